;; Claims a 2 MiB output (inside its 3 MiB memory): above the default 1 MiB cap.
(module
  (memory (export "memory") 48)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i64) (i64.const 0x200000)))
