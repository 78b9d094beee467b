;; A table of 20 000 elements, above the default table_elements limit of 10 000.
(module
  (memory (export "memory") 1)
  (table 20000 funcref)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i64) (i64.const 0)))
