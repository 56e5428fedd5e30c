;; SHA-256 (FIPS 180-4) of the whole task input.
;; Output: the digest as 64 lowercase hex characters, no newline.
;; ABI: idlemesh/1 (run, memory; imports input_len, input_read, output_write).
;;
;; Memory layout
;;   0    .. 255   K: the 64 round constants, stored big-endian (as written in the spec)
;;   256  .. 511   W: the message schedule for the current block (64 x i32)
;;   512  .. 543   H: the hash state (8 x i32)
;;   544  .. 607   the hex digest being written
;;   608  .. 623   "0123456789abcdef"
;;   1024 ..       the input, padded in place to a whole number of 64-byte blocks
(module
  (import "idlemesh" "input_len" (func $input_len (result i32)))
  (import "idlemesh" "input_read" (func $input_read (param i32)))
  (import "idlemesh" "output_write" (func $output_write (param i32 i32)))

  (memory (export "memory") 1)

  (global $K i32 (i32.const 0))
  (global $W i32 (i32.const 256))
  (global $H i32 (i32.const 512))
  (global $HEX_OUT i32 (i32.const 544))
  (global $HEX_DIGITS i32 (i32.const 608))
  (global $MSG i32 (i32.const 1024))

  ;; Round constants: the first 32 bits of the fractional parts of the cube
  ;; roots of the first 64 primes. Big-endian bytes, so each group reads as
  ;; the constant's hex value; $k byte-swaps on load.
  (data (i32.const 0)
    "\42\8a\2f\98" "\71\37\44\91" "\b5\c0\fb\cf" "\e9\b5\db\a5" "\39\56\c2\5b" "\59\f1\11\f1" "\92\3f\82\a4" "\ab\1c\5e\d5"
    "\d8\07\aa\98" "\12\83\5b\01" "\24\31\85\be" "\55\0c\7d\c3" "\72\be\5d\74" "\80\de\b1\fe" "\9b\dc\06\a7" "\c1\9b\f1\74"
    "\e4\9b\69\c1" "\ef\be\47\86" "\0f\c1\9d\c6" "\24\0c\a1\cc" "\2d\e9\2c\6f" "\4a\74\84\aa" "\5c\b0\a9\dc" "\76\f9\88\da"
    "\98\3e\51\52" "\a8\31\c6\6d" "\b0\03\27\c8" "\bf\59\7f\c7" "\c6\e0\0b\f3" "\d5\a7\91\47" "\06\ca\63\51" "\14\29\29\67"
    "\27\b7\0a\85" "\2e\1b\21\38" "\4d\2c\6d\fc" "\53\38\0d\13" "\65\0a\73\54" "\76\6a\0a\bb" "\81\c2\c9\2e" "\92\72\2c\85"
    "\a2\bf\e8\a1" "\a8\1a\66\4b" "\c2\4b\8b\70" "\c7\6c\51\a3" "\d1\92\e8\19" "\d6\99\06\24" "\f4\0e\35\85" "\10\6a\a0\70"
    "\19\a4\c1\16" "\1e\37\6c\08" "\27\48\77\4c" "\34\b0\bc\b5" "\39\1c\0c\b3" "\4e\d8\aa\4a" "\5b\9c\ca\4f" "\68\2e\6f\f3"
    "\74\8f\82\ee" "\78\a5\63\6f" "\84\c8\78\14" "\8c\c7\02\08" "\90\be\ff\fa" "\a4\50\6c\eb" "\be\f9\a3\f7" "\c6\71\78\f2")

  (data (i32.const 608) "0123456789abcdef")

  ;; Wasm memory is little-endian; SHA-256 words are big-endian.
  (func $bswap (param $x i32) (result i32)
    (i32.or
      (i32.or
        (i32.shl (local.get $x) (i32.const 24))
        (i32.and (i32.shl (local.get $x) (i32.const 8)) (i32.const 0x00ff0000)))
      (i32.or
        (i32.and (i32.shr_u (local.get $x) (i32.const 8)) (i32.const 0x0000ff00))
        (i32.shr_u (local.get $x) (i32.const 24)))))

  (func $k (param $t i32) (result i32)
    (call $bswap (i32.load (i32.add (global.get $K) (i32.shl (local.get $t) (i32.const 2))))))

  (func $w (param $t i32) (result i32)
    (i32.load (i32.add (global.get $W) (i32.shl (local.get $t) (i32.const 2)))))

  ;; Makes sure memory reaches byte offset $end (exclusive). Returns 0 when it cannot grow.
  (func $ensure_memory (param $end i32) (result i32)
    (local $pages i32)
    ;; ceil($end / 64 KiB), written to avoid overflow near 4 GiB
    (local.set $pages
      (i32.add (i32.shr_u (local.get $end) (i32.const 16))
               (i32.ne (i32.and (local.get $end) (i32.const 0xffff)) (i32.const 0))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 1))

  ;; One compression round over the 64-byte block at $p, updating H.
  (func $compress (param $p i32)
    (local $t i32)
    (local $x i32) (local $y i32) (local $s0 i32) (local $s1 i32)
    (local $t1 i32) (local $t2 i32)
    (local $a i32) (local $b i32) (local $c i32) (local $d i32)
    (local $e i32) (local $f i32) (local $g i32) (local $h i32)

    ;; --- Message schedule, words 0..15: the block itself, big-endian.
    (local.set $t (i32.const 0))
    (loop $load
      (i32.store
        (i32.add (global.get $W) (i32.shl (local.get $t) (i32.const 2)))
        (call $bswap (i32.load (i32.add (local.get $p) (i32.shl (local.get $t) (i32.const 2))))))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br_if $load (i32.lt_u (local.get $t) (i32.const 16))))

    ;; --- Message schedule, words 16..63:
    ;; W[t] = W[t-16] + s0(W[t-15]) + W[t-7] + s1(W[t-2])
    ;; s0(x) = rotr7 ^ rotr18 ^ shr3,  s1(x) = rotr17 ^ rotr19 ^ shr10
    (loop $expand
      (local.set $x (call $w (i32.sub (local.get $t) (i32.const 15))))
      (local.set $y (call $w (i32.sub (local.get $t) (i32.const 2))))
      (local.set $s0
        (i32.xor (i32.xor (i32.rotr (local.get $x) (i32.const 7))
                          (i32.rotr (local.get $x) (i32.const 18)))
                 (i32.shr_u (local.get $x) (i32.const 3))))
      (local.set $s1
        (i32.xor (i32.xor (i32.rotr (local.get $y) (i32.const 17))
                          (i32.rotr (local.get $y) (i32.const 19)))
                 (i32.shr_u (local.get $y) (i32.const 10))))
      (i32.store
        (i32.add (global.get $W) (i32.shl (local.get $t) (i32.const 2)))
        (i32.add
          (i32.add (call $w (i32.sub (local.get $t) (i32.const 16))) (local.get $s0))
          (i32.add (call $w (i32.sub (local.get $t) (i32.const 7))) (local.get $s1))))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br_if $expand (i32.lt_u (local.get $t) (i32.const 64))))

    ;; --- Working variables a..h start from the current hash state.
    (local.set $a (i32.load offset=0 (global.get $H)))
    (local.set $b (i32.load offset=4 (global.get $H)))
    (local.set $c (i32.load offset=8 (global.get $H)))
    (local.set $d (i32.load offset=12 (global.get $H)))
    (local.set $e (i32.load offset=16 (global.get $H)))
    (local.set $f (i32.load offset=20 (global.get $H)))
    (local.set $g (i32.load offset=24 (global.get $H)))
    (local.set $h (i32.load offset=28 (global.get $H)))

    ;; --- 64 rounds:
    ;; T1 = h + S1(e) + Ch(e,f,g) + K[t] + W[t]
    ;; T2 = S0(a) + Maj(a,b,c)
    ;; S1(e) = rotr6 ^ rotr11 ^ rotr25,  Ch = (e & f) ^ (~e & g)
    ;; S0(a) = rotr2 ^ rotr13 ^ rotr22,  Maj = (a & b) ^ (a & c) ^ (b & c)
    (local.set $t (i32.const 0))
    (loop $round
      (local.set $t1
        (i32.add
          (i32.add
            (local.get $h)
            (i32.xor (i32.xor (i32.rotr (local.get $e) (i32.const 6))
                              (i32.rotr (local.get $e) (i32.const 11)))
                     (i32.rotr (local.get $e) (i32.const 25))))
          (i32.add
            (i32.xor (i32.and (local.get $e) (local.get $f))
                     (i32.and (i32.xor (local.get $e) (i32.const -1)) (local.get $g)))
            (i32.add (call $k (local.get $t)) (call $w (local.get $t))))))
      (local.set $t2
        (i32.add
          (i32.xor (i32.xor (i32.rotr (local.get $a) (i32.const 2))
                            (i32.rotr (local.get $a) (i32.const 13)))
                   (i32.rotr (local.get $a) (i32.const 22)))
          (i32.xor (i32.xor (i32.and (local.get $a) (local.get $b))
                            (i32.and (local.get $a) (local.get $c)))
                   (i32.and (local.get $b) (local.get $c)))))
      (local.set $h (local.get $g))
      (local.set $g (local.get $f))
      (local.set $f (local.get $e))
      (local.set $e (i32.add (local.get $d) (local.get $t1)))
      (local.set $d (local.get $c))
      (local.set $c (local.get $b))
      (local.set $b (local.get $a))
      (local.set $a (i32.add (local.get $t1) (local.get $t2)))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br_if $round (i32.lt_u (local.get $t) (i32.const 64))))

    ;; --- Add the compressed block into the hash state.
    (i32.store offset=0 (global.get $H) (i32.add (i32.load offset=0 (global.get $H)) (local.get $a)))
    (i32.store offset=4 (global.get $H) (i32.add (i32.load offset=4 (global.get $H)) (local.get $b)))
    (i32.store offset=8 (global.get $H) (i32.add (i32.load offset=8 (global.get $H)) (local.get $c)))
    (i32.store offset=12 (global.get $H) (i32.add (i32.load offset=12 (global.get $H)) (local.get $d)))
    (i32.store offset=16 (global.get $H) (i32.add (i32.load offset=16 (global.get $H)) (local.get $e)))
    (i32.store offset=20 (global.get $H) (i32.add (i32.load offset=20 (global.get $H)) (local.get $f)))
    (i32.store offset=24 (global.get $H) (i32.add (i32.load offset=24 (global.get $H)) (local.get $g)))
    (i32.store offset=28 (global.get $H) (i32.add (i32.load offset=28 (global.get $H)) (local.get $h))))

  ;; Returns 0 on success, 1 when the input does not fit in memory.
  (func (export "run") (result i32)
    (local $len i32) (local $padded i32) (local $i i32) (local $bits i64)
    (local $word i32) (local $j i32)

    ;; --- Read the input. Padding takes the message to the next multiple
    ;; of 64 bytes that leaves room for the 0x80 byte and the 8-byte length.
    (local.set $len (call $input_len))
    (if (i32.gt_u (local.get $len) (i32.const 0xffff0000))
      (then (return (i32.const 1))))
    (local.set $padded
      (i32.shl
        (i32.add (i32.shr_u (i32.add (local.get $len) (i32.const 8)) (i32.const 6)) (i32.const 1))
        (i32.const 6)))
    (if (i32.eqz (call $ensure_memory (i32.add (global.get $MSG) (local.get $padded))))
      (then (return (i32.const 1))))
    (call $input_read (global.get $MSG))

    ;; --- Padding: 0x80, zeros, then the message length in bits as a
    ;; 64-bit big-endian integer in the last 8 bytes.
    (i32.store8 (i32.add (global.get $MSG) (local.get $len)) (i32.const 0x80))
    (local.set $i (i32.add (local.get $len) (i32.const 1)))
    (block $zeroed
      (loop $zero
        (br_if $zeroed (i32.ge_u (local.get $i) (i32.sub (local.get $padded) (i32.const 8))))
        (i32.store8 (i32.add (global.get $MSG) (local.get $i)) (i32.const 0))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $zero)))
    (local.set $bits (i64.shl (i64.extend_i32_u (local.get $len)) (i64.const 3)))
    (local.set $i (i32.const 0))
    (loop $length
      ;; byte i of the trailer holds bits (56 - 8i)..(63 - 8i)
      (i64.store8
        (i32.add (i32.add (global.get $MSG) (i32.sub (local.get $padded) (i32.const 8))) (local.get $i))
        (i64.shr_u (local.get $bits)
                   (i64.extend_i32_u (i32.sub (i32.const 56) (i32.shl (local.get $i) (i32.const 3))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $length (i32.lt_u (local.get $i) (i32.const 8))))

    ;; --- Initial hash state: the first 32 bits of the fractional parts of
    ;; the square roots of the first 8 primes.
    (i32.store offset=0 (global.get $H) (i32.const 0x6a09e667))
    (i32.store offset=4 (global.get $H) (i32.const 0xbb67ae85))
    (i32.store offset=8 (global.get $H) (i32.const 0x3c6ef372))
    (i32.store offset=12 (global.get $H) (i32.const 0xa54ff53a))
    (i32.store offset=16 (global.get $H) (i32.const 0x510e527f))
    (i32.store offset=20 (global.get $H) (i32.const 0x9b05688c))
    (i32.store offset=24 (global.get $H) (i32.const 0x1f83d9ab))
    (i32.store offset=28 (global.get $H) (i32.const 0x5be0cd19))

    ;; --- Compress every block.
    (local.set $i (i32.const 0))
    (loop $blocks
      (call $compress (i32.add (global.get $MSG) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 64)))
      (br_if $blocks (i32.lt_u (local.get $i) (local.get $padded))))

    ;; --- Hex-encode H[0..7], most significant nibble first.
    (local.set $i (i32.const 0))
    (loop $words
      (local.set $word (i32.load (i32.add (global.get $H) (i32.shl (local.get $i) (i32.const 2)))))
      (local.set $j (i32.const 0))
      (loop $nibbles
        (i32.store8
          (i32.add (global.get $HEX_OUT) (i32.add (i32.shl (local.get $i) (i32.const 3)) (local.get $j)))
          (i32.load8_u
            (i32.add (global.get $HEX_DIGITS)
                     (i32.and (i32.shr_u (local.get $word)
                                         (i32.sub (i32.const 28) (i32.shl (local.get $j) (i32.const 2))))
                              (i32.const 15)))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $nibbles (i32.lt_u (local.get $j) (i32.const 8))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $words (i32.lt_u (local.get $i) (i32.const 8))))

    (call $output_write (global.get $HEX_OUT) (i32.const 64))
    (i32.const 0))
)
