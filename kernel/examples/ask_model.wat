;; ask_model: a reactor with the capability model_inference (and "mini" in the manifest's models).
;; It asks the model "mini" with the whole input as the prompt, and returns {"answer":<answer>}.
;; The answer is spliced in as it is: the model must answer with a JSON text (kernel/mini_model.py
;; answers with a JSON string literal). When aion.infer fails it logs and returns {"answer":null}.
(module
  (import "aion" "infer" (func $infer (param i32 i32 i32 i32) (result i64)))
  (import "aion" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "mini")                           ;; 4 bytes
  (data (i32.const 32) "{\"answer\":")                   ;; 10 bytes
  (data (i32.const 48) "{\"answer\":null}")              ;; 15 bytes
  (data (i32.const 64) "ask_model: aion.infer failed")   ;; 28 bytes
  (global $heap (mut i32) (i32.const 1024))

  ;; Also called by the host, to receive the model's answer.
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
    (local $answer i64) (local $aptr i32) (local $alen i32) (local $out i32)
    (local.set $answer (call $infer (i32.const 16) (i32.const 4) (local.get $ptr) (local.get $len)))
    (if (i64.eq (local.get $answer) (i64.const -1))
      (then
        (call $log (i32.const 64) (i32.const 28))
        (return (i64.or (i64.shl (i64.const 48) (i64.const 32)) (i64.const 15)))))
    (local.set $aptr (i32.wrap_i64 (i64.shr_u (local.get $answer) (i64.const 32))))
    (local.set $alen (i32.wrap_i64 (local.get $answer)))
    (local.set $out (call $alloc (i32.add (local.get $alen) (i32.const 11))))
    (memory.copy (local.get $out) (i32.const 32) (i32.const 10))
    (memory.copy (i32.add (local.get $out) (i32.const 10)) (local.get $aptr) (local.get $alen))
    (i32.store8 (i32.add (i32.add (local.get $out) (i32.const 10)) (local.get $alen)) (i32.const 125))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (i32.add (local.get $alen) (i32.const 11))))))
