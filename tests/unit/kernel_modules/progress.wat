;; Reports progress three times: valid, valid with a null percent, malformed; returns {}.
(module
  (import "aion" "progress" (func $progress (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{}")
  (data (i32.const 32) "{\"percent\": 50, \"message\": \"half\"}")     ;; 34 bytes
  (data (i32.const 80) "{\"percent\": null, \"message\": \"busy\"}")   ;; 36 bytes
  (data (i32.const 128) "50% done")                                   ;; 8 bytes
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i64)
    (call $progress (i32.const 32) (i32.const 34))
    (call $progress (i32.const 80) (i32.const 36))
    (call $progress (i32.const 128) (i32.const 8))
    (i64.const 0x1000000002)))
