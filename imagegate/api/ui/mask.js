// The mask painter: a canvas laid over a reference image, at the image's own pixel size.
// The mask starts opaque (keep everything); the brush erases to transparent, which is the
// area to edit under OpenAI's rule. Pointer events cover mouse, pen and touch; the arrow
// keys paint too, so the canvas can be used without a pointer.

export class MaskPainter {
  constructor(canvas, image, brushInput) {
    this.canvas = canvas;
    this.image = image;
    this.brush = brushInput;
    this.painted = false;
    this.drawing = false;
    this.cursor = null;
    canvas.tabIndex = 0;
    canvas.addEventListener("pointerdown", (e) => this.start(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", () => this.stop());
    canvas.addEventListener("pointerleave", () => this.stop());
    canvas.addEventListener("keydown", (e) => this.key(e));
  }

  // Loads `src` (a data: or blob: URL) and sizes the canvas to it.
  async open(src) {
    this.image.src = src;
    await this.image.decode();
    this.canvas.width = this.image.naturalWidth;
    this.canvas.height = this.image.naturalHeight;
    this.clear();
  }

  clear() {
    const ctx = this.canvas.getContext("2d");
    ctx.globalCompositeOperation = "source-over";
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.fillStyle = "rgba(0, 0, 0, 1)";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.painted = false;
    this.cursor = { x: this.canvas.width / 2, y: this.canvas.height / 2 };
  }

  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) / box.width) * this.canvas.width,
      y: ((event.clientY - box.top) / box.height) * this.canvas.height,
    };
  }

  radius() {
    // The slider is in screen pixels; the canvas may be shown smaller than its size.
    const box = this.canvas.getBoundingClientRect();
    const scale = box.width ? this.canvas.width / box.width : 1;
    return (Number(this.brush.value) / 2) * scale;
  }

  dab(p) {
    const ctx = this.canvas.getContext("2d");
    ctx.globalCompositeOperation = "destination-out";
    ctx.beginPath();
    ctx.arc(p.x, p.y, this.radius(), 0, Math.PI * 2);
    ctx.fill();
    this.painted = true;
  }

  start(event) {
    event.preventDefault();
    this.canvas.setPointerCapture?.(event.pointerId);
    this.drawing = true;
    this.dab(this.point(event));
  }

  move(event) {
    if (this.drawing) this.dab(this.point(event));
  }

  stop() {
    this.drawing = false;
  }

  key(event) {
    const step = this.radius();
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (event.key === " " || event.key === "Enter") {
      event.preventDefault();
      this.dab(this.cursor);
    } else if (moves[event.key]) {
      event.preventDefault();
      const [dx, dy] = moves[event.key];
      this.cursor = {
        x: Math.min(Math.max(this.cursor.x + dx, 0), this.canvas.width),
        y: Math.min(Math.max(this.cursor.y + dy, 0), this.canvas.height),
      };
      this.dab(this.cursor);
    }
  }

  // The mask as a PNG data: URL, or null when nothing was painted.
  toDataURL() {
    return this.painted ? this.canvas.toDataURL("image/png") : null;
  }
}
