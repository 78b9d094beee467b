;; Calls aion.infer, but its alloc traps on the second call (the host's, for the answer).
(module
  (import "aion" "infer" (func $infer (param i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "mini")
  (global $calls (mut i32) (i32.const 0))
  (func (export "alloc") (param i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (if (i32.gt_u (global.get $calls) (i32.const 1)) (then unreachable))
    (i32.const 1024))
  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    (call $infer (i32.const 16) (i32.const 4) (local.get $ptr) (local.get $len))))
