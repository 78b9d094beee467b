"""Where a tenant's WASM module lives in the S3 store: the contract between the upload
endpoint that writes it and the stream processor (and, later, the kernel) that reads it."""


def module_object_key(tenant_id: str, hex_digest: str) -> str:
    return f"modules/{tenant_id}/sha256/{hex_digest}.wasm"
