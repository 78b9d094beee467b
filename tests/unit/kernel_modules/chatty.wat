;; Logs a 100-byte line 10 000 times (1 MB of logs) and returns {}.
(module
  (import "aion" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{}")
  (data (i32.const 100) "chatty: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i64)
    (local $i i32)
    (loop $again
      (call $log (i32.const 100) (i32.const 100))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 10000))))
    (i64.const 0x1000000002)))
