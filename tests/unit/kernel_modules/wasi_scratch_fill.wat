;; Writes 256 chunks of 64 KiB (16 MiB) to /scratch/fill.bin, then prints {"written":true}.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 3)
  (data (i32.const 256) "fill.bin")          ;; 8 bytes
  (data (i32.const 288) "{\"written\":true}") ;; 16 bytes
  (func (export "_start")
    (local $fd i32) (local $i i32)
    ;; path_open(dirfd 3, lookup 0, path, len, oflags CREAT|TRUNC, rights FD_WRITE, 0, fdflags 0, &fd)
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 256) (i32.const 8)
                         (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32))
      (then unreachable))
    (local.set $fd (i32.load (i32.const 32)))
    (i32.store (i32.const 0) (i32.const 65536))  ;; iovec: the second page, 64 KiB
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $again
      (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 16)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 256))))
    (i32.store (i32.const 0) (i32.const 288))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))
