;; Creates 26 empty files /scratch/fA .. /scratch/fZ, then prints {"files":26}.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "fA")           ;; the second byte changes
  (data (i32.const 288) "{\"files\":26}") ;; 12 bytes
  (func (export "_start")
    (local $i i32)
    (loop $again
      (i32.store8 (i32.const 257) (i32.add (i32.const 65) (local.get $i)))
      (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 256) (i32.const 2)
                           (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32))
        (then unreachable))
      (drop (call $fd_close (i32.load (i32.const 32))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 26))))
    (i32.store (i32.const 0) (i32.const 288))
    (i32.store (i32.const 4) (i32.const 12))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))
