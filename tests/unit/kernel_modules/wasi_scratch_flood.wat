;; Writes 64 KiB chunks to /scratch/flood.bin for ever (until something stops it).
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 3)
  (data (i32.const 256) "flood.bin")  ;; 9 bytes
  (func (export "_start")
    (local $fd i32)
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 256) (i32.const 9)
                         (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32))
      (then unreachable))
    (local.set $fd (i32.load (i32.const 32)))
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $again
      (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 16)))
      (br $again))))
