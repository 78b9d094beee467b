;; Returns "not json" (8 bytes at 16).
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "not json")
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i64) (i64.const 0x1000000008)))
