;; text_stats: a reactor. Input {"text": "..."}, output {"bytes":N,"words":N,"lines":N} where, for
;; the text (JSON escapes decoded):
;;   bytes: its length in UTF-8 bytes;
;;   words: runs of characters other than ASCII whitespace (space, \t, \n, \v, \f, \r);
;;   lines: the number of newlines, plus one if the text is not empty and does not end in one.
;; No JSON parser: a byte scan finds the first "text" key followed by ':' and a string, then
;; decodes the escapes of that string (\n \t \r \b \f \" \\ \/ \uXXXX). Input without a "text"
;; string gives {"error":...} and a log line.
(module
  (import "aion" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "\"text\"")                                  ;; 6 bytes
  (data (i32.const 32) "{\"bytes\":")                               ;; 9 bytes
  (data (i32.const 48) ",\"words\":")                               ;; 9 bytes
  (data (i32.const 64) ",\"lines\":")                               ;; 9 bytes
  (data (i32.const 80) "{\"error\":\"expected {\\\"text\\\": string}\"}") ;; 39 bytes
  (data (i32.const 128) "text_stats: no \"text\" string in the input") ;; 41 bytes
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

  ;; The first index >= $i in [$i, $end) that is not JSON whitespace.
  (func $skip_ws (param $i i32) (param $end i32) (result i32)
    (local $c i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $i)))
        (br_if $done
          (i32.eqz
            (i32.or (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9)))
                    (i32.or (i32.eq (local.get $c) (i32.const 10)) (i32.eq (local.get $c) (i32.const 13))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))

  ;; Where the "text" string's content starts, or -1.
  (func $find (param $p i32) (param $end i32) (result i32)
    (local $i i32) (local $j i32)
    (local.set $i (local.get $p))
    (block $none
      (loop $scan
        (br_if $none (i32.gt_u (i32.add (local.get $i) (i32.const 6)) (local.get $end)))
        (if (i32.and
              (i32.eq (i32.load (local.get $i)) (i32.load (i32.const 16)))
              (i32.eq (i32.load16_u (i32.add (local.get $i) (i32.const 4))) (i32.load16_u (i32.const 20))))
          (then
            (local.set $j (call $skip_ws (i32.add (local.get $i) (i32.const 6)) (local.get $end)))
            (if (i32.and (i32.lt_u (local.get $j) (local.get $end))
                         (i32.eq (i32.load8_u (local.get $j)) (i32.const 58)))  ;; ':'
              (then
                (local.set $j
                  (call $skip_ws (i32.add (local.get $j) (i32.const 1)) (local.get $end)))
                (if (i32.and (i32.lt_u (local.get $j) (local.get $end))
                             (i32.eq (i32.load8_u (local.get $j)) (i32.const 34)))  ;; '"'
                  (then (return (i32.add (local.get $j) (i32.const 1)))))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i32.const -1))

  ;; The value of one hex digit (0 for anything else).
  (func $hex (param $c i32) (result i32)
    (if (i32.le_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 9))
      (then (return (i32.sub (local.get $c) (i32.const 48)))))
    (if (i32.le_u (i32.sub (local.get $c) (i32.const 97)) (i32.const 5))
      (then (return (i32.sub (local.get $c) (i32.const 87)))))
    (if (i32.le_u (i32.sub (local.get $c) (i32.const 65)) (i32.const 5))
      (then (return (i32.sub (local.get $c) (i32.const 55)))))
    (i32.const 0))

  ;; Writes $n in decimal at $dst; returns the end.
  (func $utoa (param $dst i32) (param $n i32) (result i32)
    (local $digits i32) (local $t i32) (local $at i32)
    (local.set $digits (i32.const 1))
    (local.set $t (local.get $n))
    (block $counted
      (loop $count
        (br_if $counted (i32.lt_u (local.get $t) (i32.const 10)))
        (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
        (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
        (br $count)))
    (local.set $at (i32.add (local.get $dst) (local.get $digits)))
    (loop $write
      (local.set $at (i32.sub (local.get $at) (i32.const 1)))
      (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $write (i32.gt_u (local.get $at) (local.get $dst))))
    (i32.add (local.get $dst) (local.get $digits)))

  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    (local $end i32) (local $i i32) (local $c i32) (local $cp i32) (local $size i32)
    (local $bytes i32) (local $words i32) (local $lines i32) (local $inword i32) (local $last i32)
    (local $out i32) (local $at i32)
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (local.set $i (call $find (local.get $ptr) (local.get $end)))
    (if (i32.eq (local.get $i) (i32.const -1))
      (then
        (call $log (i32.const 128) (i32.const 41))
        (return (i64.or (i64.shl (i64.const 80) (i64.const 32)) (i64.const 39)))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $i)))
        (br_if $done (i32.eq (local.get $c) (i32.const 34)))  ;; the closing '"'
        (local.set $cp (local.get $c))
        (local.set $size (i32.const 1))  ;; a raw byte is one UTF-8 byte
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (if (i32.and (i32.eq (local.get $c) (i32.const 92)) (i32.lt_u (local.get $i) (local.get $end)))
          (then  ;; an escape: decode the character it stands for
            (local.set $c (i32.load8_u (local.get $i)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (local.set $cp (local.get $c))  ;; \" \\ \/ stand for themselves
            (if (i32.eq (local.get $c) (i32.const 110)) (then (local.set $cp (i32.const 10))))
            (if (i32.eq (local.get $c) (i32.const 116)) (then (local.set $cp (i32.const 9))))
            (if (i32.eq (local.get $c) (i32.const 114)) (then (local.set $cp (i32.const 13))))
            (if (i32.eq (local.get $c) (i32.const 98)) (then (local.set $cp (i32.const 8))))
            (if (i32.eq (local.get $c) (i32.const 102)) (then (local.set $cp (i32.const 12))))
            (if (i32.and (i32.eq (local.get $c) (i32.const 117))
                         (i32.le_u (i32.add (local.get $i) (i32.const 4)) (local.get $end)))
              (then  ;; \uXXXX: UTF-8 length by code point; a surrogate pair counts 4 in all
                (local.set $cp
                  (i32.or
                    (i32.or (i32.shl (call $hex (i32.load8_u (local.get $i))) (i32.const 12))
                            (i32.shl (call $hex (i32.load8_u (i32.add (local.get $i) (i32.const 1)))) (i32.const 8)))
                    (i32.or (i32.shl (call $hex (i32.load8_u (i32.add (local.get $i) (i32.const 2)))) (i32.const 4))
                            (call $hex (i32.load8_u (i32.add (local.get $i) (i32.const 3)))))))
                (local.set $i (i32.add (local.get $i) (i32.const 4)))
                (local.set $size
                  (select (i32.const 1) (select (i32.const 2) (i32.const 3)
                                                (i32.lt_u (local.get $cp) (i32.const 0x800)))
                          (i32.lt_u (local.get $cp) (i32.const 0x80))))
                (if (i32.le_u (i32.sub (local.get $cp) (i32.const 0xd800)) (i32.const 0x3ff))
                  (then (local.set $size (i32.const 4))))
                (if (i32.le_u (i32.sub (local.get $cp) (i32.const 0xdc00)) (i32.const 0x3ff))
                  (then (local.set $size (i32.const 0))))))))
        (local.set $bytes (i32.add (local.get $bytes) (local.get $size)))
        (if (i32.or (i32.eq (local.get $cp) (i32.const 32))
                    (i32.le_u (i32.sub (local.get $cp) (i32.const 9)) (i32.const 4)))  ;; 9..13
          (then (local.set $inword (i32.const 0)))
          (else
            (if (i32.eqz (local.get $inword))
              (then (local.set $words (i32.add (local.get $words) (i32.const 1)))))
            (local.set $inword (i32.const 1))))
        (if (i32.eq (local.get $cp) (i32.const 10))
          (then (local.set $lines (i32.add (local.get $lines) (i32.const 1)))))
        (local.set $last (local.get $cp))
        (br $next)))
    (if (i32.and (i32.gt_u (local.get $bytes) (i32.const 0)) (i32.ne (local.get $last) (i32.const 10)))
      (then (local.set $lines (i32.add (local.get $lines) (i32.const 1)))))
    (local.set $out (call $alloc (i32.const 64)))
    (memory.copy (local.get $out) (i32.const 32) (i32.const 9))
    (local.set $at (call $utoa (i32.add (local.get $out) (i32.const 9)) (local.get $bytes)))
    (memory.copy (local.get $at) (i32.const 48) (i32.const 9))
    (local.set $at (call $utoa (i32.add (local.get $at) (i32.const 9)) (local.get $words)))
    (memory.copy (local.get $at) (i32.const 64) (i32.const 9))
    (local.set $at (call $utoa (i32.add (local.get $at) (i32.const 9)) (local.get $lines)))
    (i32.store8 (local.get $at) (i32.const 125))  ;; '}'
    (local.set $at (i32.add (local.get $at) (i32.const 1)))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (i32.sub (local.get $at) (local.get $out))))))
