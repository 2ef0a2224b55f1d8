/** DNS over TCP (RFC 1035 §4.2.2): every message is preceded by its length as two bytes, big-endian. */

export function frameTcp(msg: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(msg.length + 2);
  framed.writeUInt16BE(msg.length, 0);
  msg.copy(framed, 2);
  return framed;
}

/**
 * Splits a TCP byte stream into DNS messages. `push` returns the messages a chunk completed (views into the
 * received bytes); `invalid` turns true at a zero-length frame — no DNS message is empty, so the stream is out of
 * sync and nothing after it is returned. `pending` counts the bytes held back (length prefix included) for a message not yet complete.
 */
export class TcpFrameReader {
  private buf: Buffer = Buffer.alloc(0);
  invalid = false;

  get pending(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): Buffer[] {
    if (this.invalid) return [];
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    while (this.buf.length >= 2) {
      const len = this.buf.readUInt16BE(0);
      if (len === 0) {
        this.invalid = true;
        break;
      }
      if (this.buf.length < 2 + len) break;
      out.push(this.buf.subarray(2, 2 + len));
      this.buf = this.buf.subarray(2 + len);
    }
    return out;
  }
}
