;; Declares (and exports) a 64 MiB minimum memory: above a 16 MiB limit before any code runs.
(module
  (memory (export "memory") 1024)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i64) (i64.const 0)))
