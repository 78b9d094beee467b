;; A WASI command with a 64 MiB minimum on a memory it does not export: only instantiation can
;; tell ("memory minimum size of 1024 pages exceeds memory limits").
(module
  (memory 1024)
  (func (export "_start")))
