;; N-body: the Computer Language Benchmarks Game's 5-body model of the Sun and
;; the four gas giants, integrated with a simple symplectic Euler step (dt = 0.01).
;; Input:  ASCII decimal step count, surrounding whitespace allowed ("1000\n").
;; Output: total energy before and after, 9 decimals each, one per line:
;;         "-0.169075164\n-0.169087605\n" for 1000 steps.
;; run returns 0 on success, 1 for an input that is not a step count
;; (empty, not digits, above 2,000,000,000), 2 if an energy is not printable.
;; ABI: idlemesh/1.
;;
;; The operation order matches the reference programs, so any IEEE-754
;; double implementation of the same loop gives bit-identical energies.
;;
;; Memory layout
;;   0    .. 279   5 bodies x 7 f64: x y z vx vy vz mass (56 bytes each)
;;   512  .. 575   the input (at most 64 bytes)
;;   1024 .. 1087  the output text
(module
  (import "idlemesh" "input_len" (func $input_len (result i32)))
  (import "idlemesh" "input_read" (func $input_read (param i32)))
  (import "idlemesh" "output_write" (func $output_write (param i32 i32)))

  (memory (export "memory") 1)

  (global $BODIES i32 (i32.const 5))
  (global $BODY_SIZE i32 (i32.const 56))
  (global $INPUT i32 (i32.const 512))
  (global $MAX_INPUT i32 (i32.const 64))
  (global $OUT i32 (i32.const 1024))
  (global $out_len (mut i32) (i32.const 0))

  (global $PI f64 (f64.const 3.141592653589793))
  (global $DAYS_PER_YEAR f64 (f64.const 365.24))
  (global $DT f64 (f64.const 0.01))

  (func $solar_mass (result f64)
    (f64.mul (f64.mul (f64.const 4) (global.get $PI)) (global.get $PI)))

  (func $body (param $i i32) (result i32)
    (i32.mul (local.get $i) (global.get $BODY_SIZE)))

  ;; Stores body $i. Velocities are given in AU/day and masses in solar
  ;; masses; the model works in AU/year and units where G = 1.
  (func $set_body (param $i i32)
    (param $x f64) (param $y f64) (param $z f64)
    (param $vx f64) (param $vy f64) (param $vz f64) (param $mass f64)
    (local $p i32)
    (local.set $p (call $body (local.get $i)))
    (f64.store offset=0 (local.get $p) (local.get $x))
    (f64.store offset=8 (local.get $p) (local.get $y))
    (f64.store offset=16 (local.get $p) (local.get $z))
    (f64.store offset=24 (local.get $p) (f64.mul (local.get $vx) (global.get $DAYS_PER_YEAR)))
    (f64.store offset=32 (local.get $p) (f64.mul (local.get $vy) (global.get $DAYS_PER_YEAR)))
    (f64.store offset=40 (local.get $p) (f64.mul (local.get $vz) (global.get $DAYS_PER_YEAR)))
    (f64.store offset=48 (local.get $p) (f64.mul (local.get $mass) (call $solar_mass))))

  (func $init_bodies
    (local $px f64) (local $py f64) (local $pz f64) (local $i i32) (local $p i32)
    ;; Sun (its velocity is set below so that total momentum is zero)
    (call $set_body (i32.const 0)
      (f64.const 0) (f64.const 0) (f64.const 0)
      (f64.const 0) (f64.const 0) (f64.const 0)
      (f64.const 1))
    ;; Jupiter
    (call $set_body (i32.const 1)
      (f64.const 4.84143144246472090e+00) (f64.const -1.16032004402742839e+00) (f64.const -1.03622044471123109e-01)
      (f64.const 1.66007664274403694e-03) (f64.const 7.69901118419740425e-03) (f64.const -6.90460016972063023e-05)
      (f64.const 9.54791938424326609e-04))
    ;; Saturn
    (call $set_body (i32.const 2)
      (f64.const 8.34336671824457987e+00) (f64.const 4.12479856412430479e+00) (f64.const -4.03523417114321381e-01)
      (f64.const -2.76742510726862411e-03) (f64.const 4.99852801234917238e-03) (f64.const 2.30417297573763929e-05)
      (f64.const 2.85885980666130812e-04))
    ;; Uranus
    (call $set_body (i32.const 3)
      (f64.const 1.28943695621391310e+01) (f64.const -1.51111514016986312e+01) (f64.const -2.23307578892655734e-01)
      (f64.const 2.96460137564761618e-03) (f64.const 2.37847173959480950e-03) (f64.const -2.96589568540237556e-05)
      (f64.const 4.36624404335156298e-05))
    ;; Neptune
    (call $set_body (i32.const 4)
      (f64.const 1.53796971148509165e+01) (f64.const -2.59193146099879641e+01) (f64.const 1.79258772950371181e-01)
      (f64.const 2.68067772490389322e-03) (f64.const 1.62824170038242295e-03) (f64.const -9.51592254519715870e-05)
      (f64.const 5.15138902046611451e-05))

    ;; --- Offset momentum: the Sun moves opposite to the planets' total momentum.
    (loop $sum
      (local.set $p (call $body (local.get $i)))
      (local.set $px (f64.add (local.get $px) (f64.mul (f64.load offset=24 (local.get $p)) (f64.load offset=48 (local.get $p)))))
      (local.set $py (f64.add (local.get $py) (f64.mul (f64.load offset=32 (local.get $p)) (f64.load offset=48 (local.get $p)))))
      (local.set $pz (f64.add (local.get $pz) (f64.mul (f64.load offset=40 (local.get $p)) (f64.load offset=48 (local.get $p)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $sum (i32.lt_u (local.get $i) (global.get $BODIES))))
    (f64.store offset=24 (i32.const 0) (f64.div (f64.neg (local.get $px)) (call $solar_mass)))
    (f64.store offset=32 (i32.const 0) (f64.div (f64.neg (local.get $py)) (call $solar_mass)))
    (f64.store offset=40 (i32.const 0) (f64.div (f64.neg (local.get $pz)) (call $solar_mass))))

  ;; e = sum_i m_i |v_i|^2 / 2  -  sum_{i<j} m_i m_j / |x_i - x_j|
  (func $energy (result f64)
    (local $e f64) (local $i i32) (local $j i32) (local $p i32) (local $q i32)
    (local $dx f64) (local $dy f64) (local $dz f64)
    (loop $outer
      (local.set $p (call $body (local.get $i)))
      ;; kinetic energy of body i
      (local.set $e
        (f64.add (local.get $e)
          (f64.mul
            (f64.mul (f64.const 0.5) (f64.load offset=48 (local.get $p)))
            (f64.add
              (f64.add
                (f64.mul (f64.load offset=24 (local.get $p)) (f64.load offset=24 (local.get $p)))
                (f64.mul (f64.load offset=32 (local.get $p)) (f64.load offset=32 (local.get $p))))
              (f64.mul (f64.load offset=40 (local.get $p)) (f64.load offset=40 (local.get $p)))))))
      ;; potential energy of each pair (i, j > i)
      (local.set $j (i32.add (local.get $i) (i32.const 1)))
      (block $pairs_done
        (loop $pairs
          (br_if $pairs_done (i32.ge_u (local.get $j) (global.get $BODIES)))
          (local.set $q (call $body (local.get $j)))
          (local.set $dx (f64.sub (f64.load offset=0 (local.get $p)) (f64.load offset=0 (local.get $q))))
          (local.set $dy (f64.sub (f64.load offset=8 (local.get $p)) (f64.load offset=8 (local.get $q))))
          (local.set $dz (f64.sub (f64.load offset=16 (local.get $p)) (f64.load offset=16 (local.get $q))))
          (local.set $e
            (f64.sub (local.get $e)
              (f64.div
                (f64.mul (f64.load offset=48 (local.get $p)) (f64.load offset=48 (local.get $q)))
                (f64.sqrt
                  (f64.add
                    (f64.add (f64.mul (local.get $dx) (local.get $dx)) (f64.mul (local.get $dy) (local.get $dy)))
                    (f64.mul (local.get $dz) (local.get $dz)))))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $pairs)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $i) (global.get $BODIES))))
    (local.get $e))

  ;; One time step: update all velocities from pairwise gravity, then move.
  (func $advance
    (local $i i32) (local $j i32) (local $p i32) (local $q i32)
    (local $dx f64) (local $dy f64) (local $dz f64) (local $d2 f64) (local $mag f64)
    (local $mi f64) (local $mj f64)
    (loop $outer
      (local.set $p (call $body (local.get $i)))
      (local.set $mi (f64.load offset=48 (local.get $p)))
      (local.set $j (i32.add (local.get $i) (i32.const 1)))
      (block $pairs_done
        (loop $pairs
          (br_if $pairs_done (i32.ge_u (local.get $j) (global.get $BODIES)))
          (local.set $q (call $body (local.get $j)))
          (local.set $mj (f64.load offset=48 (local.get $q)))
          (local.set $dx (f64.sub (f64.load offset=0 (local.get $p)) (f64.load offset=0 (local.get $q))))
          (local.set $dy (f64.sub (f64.load offset=8 (local.get $p)) (f64.load offset=8 (local.get $q))))
          (local.set $dz (f64.sub (f64.load offset=16 (local.get $p)) (f64.load offset=16 (local.get $q))))
          ;; mag = dt / d^3
          (local.set $d2
            (f64.add
              (f64.add (f64.mul (local.get $dx) (local.get $dx)) (f64.mul (local.get $dy) (local.get $dy)))
              (f64.mul (local.get $dz) (local.get $dz))))
          (local.set $mag (f64.div (global.get $DT) (f64.mul (local.get $d2) (f64.sqrt (local.get $d2)))))
          ;; v_i -= d * m_j * mag ;  v_j += d * m_i * mag
          (f64.store offset=24 (local.get $p)
            (f64.sub (f64.load offset=24 (local.get $p)) (f64.mul (f64.mul (local.get $dx) (local.get $mj)) (local.get $mag))))
          (f64.store offset=32 (local.get $p)
            (f64.sub (f64.load offset=32 (local.get $p)) (f64.mul (f64.mul (local.get $dy) (local.get $mj)) (local.get $mag))))
          (f64.store offset=40 (local.get $p)
            (f64.sub (f64.load offset=40 (local.get $p)) (f64.mul (f64.mul (local.get $dz) (local.get $mj)) (local.get $mag))))
          (f64.store offset=24 (local.get $q)
            (f64.add (f64.load offset=24 (local.get $q)) (f64.mul (f64.mul (local.get $dx) (local.get $mi)) (local.get $mag))))
          (f64.store offset=32 (local.get $q)
            (f64.add (f64.load offset=32 (local.get $q)) (f64.mul (f64.mul (local.get $dy) (local.get $mi)) (local.get $mag))))
          (f64.store offset=40 (local.get $q)
            (f64.add (f64.load offset=40 (local.get $q)) (f64.mul (f64.mul (local.get $dz) (local.get $mi)) (local.get $mag))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $pairs)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $i) (global.get $BODIES))))

    ;; x += dt * v
    (local.set $i (i32.const 0))
    (loop $move
      (local.set $p (call $body (local.get $i)))
      (f64.store offset=0 (local.get $p)
        (f64.add (f64.load offset=0 (local.get $p)) (f64.mul (global.get $DT) (f64.load offset=24 (local.get $p)))))
      (f64.store offset=8 (local.get $p)
        (f64.add (f64.load offset=8 (local.get $p)) (f64.mul (global.get $DT) (f64.load offset=32 (local.get $p)))))
      (f64.store offset=16 (local.get $p)
        (f64.add (f64.load offset=16 (local.get $p)) (f64.mul (global.get $DT) (f64.load offset=40 (local.get $p)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $move (i32.lt_u (local.get $i) (global.get $BODIES)))))

  ;; --- Parsing: decimal digits with optional surrounding ASCII whitespace.
  ;; Returns the count, or -1 when the input is not one.
  (func $is_space (param $c i32) (result i32)
    (i32.or
      (i32.eq (local.get $c) (i32.const 32))                        ;; space
      (i32.and (i32.ge_u (local.get $c) (i32.const 9))              ;; \t \n \v \f \r
               (i32.le_u (local.get $c) (i32.const 13)))))

  (func $parse_steps (param $len i32) (result i32)
    (local $i i32) (local $c i32) (local $n i64) (local $digits i32)
    ;; leading whitespace
    (block $lead_done
      (loop $lead
        (br_if $lead_done (i32.ge_u (local.get $i) (local.get $len)))
        (br_if $lead_done (i32.eqz (call $is_space (i32.load8_u (i32.add (global.get $INPUT) (local.get $i))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $lead)))
    ;; digits; checking the limit after every digit keeps the i64 accumulator
    ;; from overflowing however many digits there are
    (block $digits_done
      (loop $digit
        (br_if $digits_done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.sub (i32.load8_u (i32.add (global.get $INPUT) (local.get $i))) (i32.const 48)))
        (br_if $digits_done (i32.gt_u (local.get $c) (i32.const 9)))
        (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10)) (i64.extend_i32_u (local.get $c))))
        (if (i64.gt_u (local.get $n) (i64.const 2000000000))
          (then (return (i32.const -1))))
        (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $digit)))
    (if (i32.eqz (local.get $digits))
      (then (return (i32.const -1))))
    ;; trailing whitespace only
    (block $trail_done
      (loop $trail
        (br_if $trail_done (i32.ge_u (local.get $i) (local.get $len)))
        (if (i32.eqz (call $is_space (i32.load8_u (i32.add (global.get $INPUT) (local.get $i)))))
          (then (return (i32.const -1))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $trail)))
    (i32.wrap_i64 (local.get $n)))

  ;; --- Formatting: appends $v with exactly 9 decimals and a newline to the
  ;; output buffer. Rounds v * 1e9 to the nearest integer (ties to even); this can
;; differ from printf's exact decimal rounding only when v is within an ulp of
;; a tie, which a host checking results reproduces by formatting the same way.
  ;; Returns 0 when |v| is too large (or NaN) to print this way.
  (func $emit_byte (param $b i32)
    (i32.store8 (i32.add (global.get $OUT) (global.get $out_len)) (local.get $b))
    (global.set $out_len (i32.add (global.get $out_len) (i32.const 1))))

  (func $emit_fixed9 (param $v f64) (result i32)
    (local $scaled f64) (local $n i64) (local $int i64) (local $frac i64)
    (local $start i32) (local $i i32) (local $tmp i32)
    (local.set $scaled (f64.nearest (f64.mul (f64.abs (local.get $v)) (f64.const 1e9))))
    ;; also false for NaN
    (if (i32.eqz (f64.lt (local.get $scaled) (f64.const 9.0e18)))
      (then (return (i32.const 0))))
    (local.set $n (i64.trunc_f64_u (local.get $scaled)))
    ;; '-' whenever v < 0, as printf("%.9f") does (even if it rounds to zero)
    (if (f64.lt (local.get $v) (f64.const 0))
      (then (call $emit_byte (i32.const 45))))                     ;; '-'
    (local.set $int (i64.div_u (local.get $n) (i64.const 1000000000)))
    (local.set $frac (i64.rem_u (local.get $n) (i64.const 1000000000)))

    ;; integer part: emit digits least significant first, then reverse them
    (local.set $start (global.get $out_len))
    (loop $int_digits
      (call $emit_byte (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $int) (i64.const 10)))))
      (local.set $int (i64.div_u (local.get $int) (i64.const 10)))
      (br_if $int_digits (i64.ne (local.get $int) (i64.const 0))))
    (local.set $i (i32.add (global.get $OUT) (local.get $start)))
    (local.set $start (i32.add (global.get $OUT) (i32.sub (global.get $out_len) (i32.const 1))))
    (block $reversed
      (loop $reverse
        (br_if $reversed (i32.ge_u (local.get $i) (local.get $start)))
        (local.set $tmp (i32.load8_u (local.get $i)))
        (i32.store8 (local.get $i) (i32.load8_u (local.get $start)))
        (i32.store8 (local.get $start) (local.get $tmp))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (local.set $start (i32.sub (local.get $start) (i32.const 1)))
        (br $reverse)))

    ;; fractional part: exactly 9 digits, zero-padded, written right to left
    (call $emit_byte (i32.const 46))                               ;; '.'
    (local.set $i (i32.const 9))
    (loop $frac_digits
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8
        (i32.add (i32.add (global.get $OUT) (global.get $out_len)) (local.get $i))
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $frac) (i64.const 10)))))
      (local.set $frac (i64.div_u (local.get $frac) (i64.const 10)))
      (br_if $frac_digits (i32.ne (local.get $i) (i32.const 0))))
    (global.set $out_len (i32.add (global.get $out_len) (i32.const 9)))
    (call $emit_byte (i32.const 10))                               ;; '\n'
    (i32.const 1))

  (func (export "run") (result i32)
    (local $len i32) (local $steps i32) (local $before f64)

    ;; --- Read and parse the step count.
    (local.set $len (call $input_len))
    (if (i32.gt_u (local.get $len) (global.get $MAX_INPUT))
      (then (return (i32.const 1))))
    (call $input_read (global.get $INPUT))
    (local.set $steps (call $parse_steps (local.get $len)))
    (if (i32.lt_s (local.get $steps) (i32.const 0))
      (then (return (i32.const 1))))

    ;; --- Simulate.
    (call $init_bodies)
    (local.set $before (call $energy))
    (block $done
      (loop $step
        (br_if $done (i32.eqz (local.get $steps)))
        (call $advance)
        (local.set $steps (i32.sub (local.get $steps) (i32.const 1)))
        (br $step)))

    ;; --- Print both energies.
    (global.set $out_len (i32.const 0))
    (if (i32.eqz (call $emit_fixed9 (local.get $before)))
      (then (return (i32.const 2))))
    (if (i32.eqz (call $emit_fixed9 (call $energy)))
      (then (return (i32.const 2))))
    (call $output_write (global.get $OUT) (global.get $out_len))
    (i32.const 0))
)
