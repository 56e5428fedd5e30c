;; The smallest useful task: the output is the input, byte for byte.
;; For throughput benchmarks, where the module's own work should be ~nothing.
;; ABI: idlemesh/1. Returns 0, or 1 when the input does not fit in memory.
(module
  (import "idlemesh" "input_len" (func $input_len (result i32)))
  (import "idlemesh" "input_read" (func $input_read (param i32)))
  (import "idlemesh" "output_write" (func $output_write (param i32 i32)))

  (memory (export "memory") 1)

  (func (export "run") (result i32)
    (local $len i32) (local $pages i32)
    (local.set $len (call $input_len))
    ;; grow to ceil(len / 64 KiB) pages if the input does not fit
    (local.set $pages
      (i32.add (i32.shr_u (local.get $len) (i32.const 16))
               (i32.ne (i32.and (local.get $len) (i32.const 0xffff)) (i32.const 0))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 1))))))
    (call $input_read (i32.const 0))
    (call $output_write (i32.const 0) (local.get $len))
    (i32.const 0))
)
