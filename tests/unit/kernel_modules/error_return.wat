;; Returns -1: the agent's own way to say it failed (after logging why).
(module
  (import "aion" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "bad input")
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i64)
    (call $log (i32.const 16) (i32.const 9))
    (i64.const -1)))
