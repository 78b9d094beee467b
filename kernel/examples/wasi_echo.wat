;; wasi_echo: a WASI command (abi wasi_command, entrypoint _start) copying stdin to stdout.
;; The kernel gives the input on stdin and takes stdout as the output (it must be JSON).
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  ;; [0, 8): one iovec {buf, len}; [16, 20): bytes read; [20, 24): bytes written;
  ;; [65536, 131072): the copy buffer.
  (memory (export "memory") 2)

  (func (export "_start")
    (local $n i32) (local $off i32)
    (loop $read
      (i32.store (i32.const 0) (i32.const 65536))
      (i32.store (i32.const 4) (i32.const 65536))
      (if (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16))
        (then (call $proc_exit (i32.const 1))))
      (local.set $n (i32.load (i32.const 16)))
      (if (i32.eqz (local.get $n)) (then (return)))
      (local.set $off (i32.const 65536))
      (loop $write
        (i32.store (i32.const 0) (local.get $off))
        (i32.store (i32.const 4) (local.get $n))
        (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 20))
          (then (call $proc_exit (i32.const 2))))
        (local.set $off (i32.add (local.get $off) (i32.load (i32.const 20))))
        (local.set $n (i32.sub (local.get $n) (i32.load (i32.const 20))))
        (br_if $write (i32.gt_u (local.get $n) (i32.const 0))))
      (br $read))))
