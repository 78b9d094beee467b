;; Asks the model "mini" with a prompt of 48 MiB: a range inside its 64 MiB memory, so only a
;; bound on the prompt's length keeps the host from copying it. Returns what aion.infer returns.
(module
  (import "aion" "infer" (func $infer (param i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1024)
  (data (i32.const 16) "mini")
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i64)
    (call $infer (i32.const 16) (i32.const 4) (i32.const 4096) (i32.const 0x3000000))))
