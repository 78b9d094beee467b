;; Creates out.txt in the first preopened directory (fd 3, /scratch when granted) and writes
;; "hello" to it; prints {"scratch":true}, or {"scratch":false} when there is no such directory.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "out.txt")            ;; 7 bytes
  (data (i32.const 272) "hello")              ;; 5 bytes
  (data (i32.const 288) "{\"scratch\":true}")  ;; 16 bytes
  (data (i32.const 320) "{\"scratch\":false}") ;; 17 bytes
  (func $print (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 16))))
  (func (export "_start")
    ;; path_open(dirfd 3, lookup 0, path, len, oflags CREAT|TRUNC, rights FD_WRITE, 0, fdflags 0, &fd)
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 256) (i32.const 7)
                         (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32))
      (then (call $print (i32.const 1) (i32.const 320) (i32.const 17)) (return)))
    (call $print (i32.load (i32.const 32)) (i32.const 272) (i32.const 5))
    (call $print (i32.const 1) (i32.const 288) (i32.const 16))))
