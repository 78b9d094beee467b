;; The stored-XSS attack of issue 17 (finding 5): creates x.html in the scratch directory
;; (fd 3) with a script in it, and prints {"scratch":true}.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "x.html")                                   ;; 6 bytes
  (data (i32.const 272) "<script>alert(document.cookie)</script>")  ;; 39 bytes
  (data (i32.const 320) "{\"scratch\":true}")                       ;; 16 bytes
  (func $print (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 16))))
  (func (export "_start")
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 256) (i32.const 6)
                         (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32))
      (then (unreachable)))
    (call $print (i32.load (i32.const 32)) (i32.const 272) (i32.const 39))
    (call $print (i32.const 1) (i32.const 320) (i32.const 16))))
