;; json_wrap: a JSON transformer (reactor). Output: {"input":<the input JSON>,"agent":"json-wrap"}.
;; The input is spliced in as it is, so the output is valid JSON exactly when the input is.
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"input\":")                 ;; 9 bytes
  (data (i32.const 32) ",\"agent\":\"json-wrap\"}")     ;; 21 bytes
  (global $heap (mut i32) (i32.const 1024))

  (func $alloc (export "alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i32) (local $pages i32)
    (local.set $ptr (global.get $heap))
    (local.set $end
      (i32.and (i32.add (i32.add (local.get $ptr) (local.get $len)) (i32.const 7)) (i32.const -8)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then unreachable))
    (local.set $pages
      (i32.sub
        (i32.add (i32.shr_u (local.get $end) (i32.const 16))
                 (i32.ne (i32.and (local.get $end) (i32.const 0xffff)) (i32.const 0)))
        (memory.size)))
    (if (i32.gt_s (local.get $pages) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1)) (then unreachable))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32) (local $size i32)
    (local.set $size (i32.add (local.get $len) (i32.const 30)))
    (local.set $out (call $alloc (local.get $size)))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 9))
    (memory.copy (i32.add (local.get $out) (i32.const 9)) (local.get $ptr) (local.get $len))
    (memory.copy
      (i32.add (i32.add (local.get $out) (i32.const 9)) (local.get $len)) (i32.const 32) (i32.const 21))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (local.get $size)))))
