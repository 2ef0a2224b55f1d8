/**
 * IPv4 address and CIDR arithmetic on unsigned 32-bit numbers.
 * Pure functions; every parser throws a RangeError naming the bad input.
 */

export interface Cidr {
  /** Network address (host bits cleared). */
  readonly network: number;
  readonly prefix: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIp(text: string): number {
  const m = IPV4.exec(text.trim());
  if (!m) throw new RangeError(`not an IPv4 address: ${JSON.stringify(text)}`);
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255 || (m[i]!.length > 1 && m[i]!.startsWith('0'))) {
      throw new RangeError(`not an IPv4 address: ${JSON.stringify(text)}`);
    }
    n = n * 256 + octet;
  }
  return n;
}

export function isIp(text: string): boolean {
  try {
    parseIp(text);
    return true;
  } catch {
    return false;
  }
}

export function formatIp(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function sizeOf(prefix: number): number {
  return 2 ** (32 - prefix);
}

/** Parses "a.b.c.d/len". With strict, host bits must be zero. */
export function parseCidr(text: string, strict = true): Cidr {
  const [ip, len, ...rest] = text.trim().split('/');
  if (ip === undefined || len === undefined || rest.length > 0 || !/^\d{1,2}$/.test(len)) {
    throw new RangeError(`not an IPv4 CIDR: ${JSON.stringify(text)}`);
  }
  const prefix = Number(len);
  if (prefix > 32) throw new RangeError(`not an IPv4 CIDR (prefix > 32): ${JSON.stringify(text)}`);
  const addr = parseIp(ip);
  const network = (addr & maskOf(prefix)) >>> 0;
  if (strict && network !== addr) {
    throw new RangeError(`CIDR has host bits set: ${JSON.stringify(text)} (did you mean ${formatIp(network)}/${prefix}?)`);
  }
  return { network, prefix };
}

/** Parses "a.b.c.d/len" keeping the address (for interface addresses such as "10.0.0.5/24"). */
export function parseIfaceAddress(text: string): { ip: number; prefix: number } {
  const [ip, len, ...rest] = text.trim().split('/');
  if (ip === undefined || len === undefined || rest.length > 0 || !/^\d{1,2}$/.test(len) || Number(len) > 32) {
    throw new RangeError(`not an IPv4 address with prefix: ${JSON.stringify(text)}`);
  }
  return { ip: parseIp(ip), prefix: Number(len) };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.network)}/${c.prefix}`;
}

export function contains(outer: Cidr, ip: number): boolean {
  return ((ip & maskOf(outer.prefix)) >>> 0) === outer.network;
}

export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && contains(outer, inner.network);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return containsCidr(a, b) || containsCidr(b, a);
}

export function lastAddress(c: Cidr): number {
  return (c.network + sizeOf(c.prefix) - 1) >>> 0;
}

/** Splits `outer` into consecutive subnets of `prefix` (in address order). */
export function* subnets(outer: Cidr, prefix: number): Generator<Cidr> {
  if (prefix < outer.prefix) throw new RangeError(`cannot split /${outer.prefix} into larger /${prefix} subnets`);
  const step = sizeOf(prefix);
  const count = sizeOf(outer.prefix) / step;
  for (let i = 0; i < count; i++) yield { network: (outer.network + i * step) >>> 0, prefix };
}

/** flannel's subnet key encoding: "10.1.0.0/20" → "10.1.0.0-20". */
export function cidrToKey(c: Cidr): string {
  return `${formatIp(c.network)}-${c.prefix}`;
}

export function keyToCidr(key: string): Cidr {
  const i = key.lastIndexOf('-');
  if (i < 0) throw new RangeError(`not a subnet key: ${JSON.stringify(key)}`);
  return parseCidr(`${key.slice(0, i)}/${key.slice(i + 1)}`);
}
