"""The WASM kernel: Aion's data plane (wasmtime, quotas, the agent ABI).

Empty until the kernel issue: it will know nothing of Kafka, only modules, inputs and quotas.
"""
