;; Prints two clock readings and 8 random bytes as one JSON string of hex digits: the same in
;; every run, because the kernel grants no real clock or randomness.
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "0123456789abcdef")
  ;; [64, 88): raw bytes (clock 1, clock 2, random); [128, 178): the JSON string.
  (func (export "_start")
    (local $i i32) (local $b i32)
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 64)))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 72)))
    (drop (call $random (i32.const 80) (i32.const 8)))
    (i32.store8 (i32.const 128) (i32.const 34))
    (loop $hex
      (local.set $b (i32.load8_u (i32.add (i32.const 64) (local.get $i))))
      (i32.store8 (i32.add (i32.const 129) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.add (i32.const 1024) (i32.shr_u (local.get $b) (i32.const 4)))))
      (i32.store8 (i32.add (i32.const 130) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.add (i32.const 1024) (i32.and (local.get $b) (i32.const 15)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $hex (i32.lt_u (local.get $i) (i32.const 24))))
    (i32.store8 (i32.const 177) (i32.const 34))
    (i32.store (i32.const 0) (i32.const 128))
    (i32.store (i32.const 4) (i32.const 50))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))
