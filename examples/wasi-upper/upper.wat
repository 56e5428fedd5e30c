;; Upper-cases ASCII: reads stdin to EOF and writes it to stdout with a-z
;; mapped to A-Z; every other byte (including UTF-8 sequences) passes through.
;; ABI: WASI preview 1, stdin/stdout only. Exit status 0, or 1 on an I/O error.
;;
;; Memory layout
;;   0  .. 7       the iovec {buf, len} handed to fd_read / fd_write
;;   8  .. 11      bytes read / written by the last call
;;   65536 .. +64K the I/O buffer
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param $fd i32) (param $iovs i32) (param $iovs_len i32) (param $nread i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param $fd i32) (param $iovs i32) (param $iovs_len i32) (param $nwritten i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param $code i32)))

  (memory (export "memory") 2)

  (global $STDIN i32 (i32.const 0))
  (global $STDOUT i32 (i32.const 1))
  (global $IOV i32 (i32.const 0))
  (global $COUNT i32 (i32.const 8))
  (global $BUF i32 (i32.const 65536))
  (global $BUF_SIZE i32 (i32.const 65536))

  ;; Writes all of [$p, $p + $n) to stdout; hosts may accept fewer bytes per call.
  ;; Returns 0 on success, the WASI errno otherwise.
  (func $write_all (param $p i32) (param $n i32) (result i32)
    (local $errno i32) (local $done i32)
    (block $written
      (loop $more
        (br_if $written (i32.eqz (local.get $n)))
        (i32.store offset=0 (global.get $IOV) (local.get $p))
        (i32.store offset=4 (global.get $IOV) (local.get $n))
        (local.set $errno (call $fd_write (global.get $STDOUT) (global.get $IOV) (i32.const 1) (global.get $COUNT)))
        (if (local.get $errno) (then (return (local.get $errno))))
        (local.set $done (i32.load (global.get $COUNT)))
        ;; a host that accepts nothing would loop forever: treat it as EIO (29)
        (if (i32.eqz (local.get $done)) (then (return (i32.const 29))))
        (local.set $p (i32.add (local.get $p) (local.get $done)))
        (local.set $n (i32.sub (local.get $n) (local.get $done)))
        (br $more)))
    (i32.const 0))

  (func $main (export "_start")
    (local $n i32) (local $p i32) (local $end i32) (local $c i32)
    (loop $chunk
      ;; --- Read the next chunk; 0 bytes means end of input.
      (i32.store offset=0 (global.get $IOV) (global.get $BUF))
      (i32.store offset=4 (global.get $IOV) (global.get $BUF_SIZE))
      (if (call $fd_read (global.get $STDIN) (global.get $IOV) (i32.const 1) (global.get $COUNT))
        (then (call $proc_exit (i32.const 1)) (unreachable)))
      (local.set $n (i32.load (global.get $COUNT)))
      (if (i32.eqz (local.get $n))
        (then (call $proc_exit (i32.const 0)) (unreachable)))

      ;; --- Upper-case in place: 'a'..'z' (97..122) minus 32.
      (local.set $p (global.get $BUF))
      (local.set $end (i32.add (global.get $BUF) (local.get $n)))
      (loop $byte
        (local.set $c (i32.load8_u (local.get $p)))
        (if (i32.le_u (i32.sub (local.get $c) (i32.const 97)) (i32.const 25))
          (then (i32.store8 (local.get $p) (i32.sub (local.get $c) (i32.const 32)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br_if $byte (i32.lt_u (local.get $p) (local.get $end))))

      ;; --- Write it out.
      (if (call $write_all (global.get $BUF) (local.get $n))
        (then (call $proc_exit (i32.const 1)) (unreachable)))
      (br $chunk)))
)
