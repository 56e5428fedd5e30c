import { useEffect, useRef, useState } from 'preact/hooks';
import QRCode from 'qrcode';

/** A QR code of `text`, drawn on a canvas (dark on white, with a quiet zone, so any phone reads it). */
export function QrCode({ text, label, size = 220 }: { text: string; label: string; size?: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const [error, setError] = useState<string | undefined>(undefined);
  // The text the canvas shows now: drawing is asynchronous, and a reader (or a test) must not scan a blank canvas.
  const [drawn, setDrawn] = useState<string | undefined>(undefined);
  useEffect(() => {
    if (!ref.current) return;
    setDrawn(undefined);
    QRCode.toCanvas(ref.current, text, { width: size, margin: 4, errorCorrectionLevel: 'M', color: { dark: '#000000', light: '#ffffff' } })
      .then(() => { setError(undefined); setDrawn(text); }, (err: unknown) => setError((err as Error).message));
  }, [text, size]);
  return (
    <figure class="qr">
      <canvas ref={ref} role="img" aria-label={label} width={size} height={size} data-drawn={drawn === text ? 'true' : 'false'} />
      {error !== undefined && <figcaption class="error-message">Cannot draw the QR code: {error}</figcaption>}
    </figure>
  );
}
