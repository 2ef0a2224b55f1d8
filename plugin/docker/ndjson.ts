/** Splits a byte stream into JSON lines; a partial line is kept until its newline arrives. Bad lines are reported, not thrown. */
export class NdjsonSplitter {
  private buf = '';
  constructor(private readonly onObject: (o: unknown) => void, private readonly onBadLine: (line: string) => void) {}

  push(chunk: Buffer | string): void {
    this.buf += chunk.toString();
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      try {
        this.onObject(JSON.parse(line));
      } catch {
        this.onBadLine(line.slice(0, 200));
      }
    }
  }
}
