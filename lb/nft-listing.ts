/**
 * Reading back a table as `nft list table` prints it, for both backends' drift checks (lb/nftables, lb/ipvs):
 * its sets, maps and chains, their elements (nft wraps long lists over lines) and the hairpin pairs.
 */

/** The table's sets, maps and chains by `<kind> <name>`, each body as its trimmed, non-empty lines. */
export function listingBlocks(text: string): Map<string, string[]> {
  const blocks = new Map<string, string[]>();
  for (const m of text.matchAll(/^\t(set|map|chain) (\S+) \{\n([\s\S]*?)^\t\}/gm)) {
    blocks.set(`${m[1]} ${m[2]}`, m[3]!.split('\n').map((l) => l.trim()).filter(Boolean));
  }
  return blocks;
}

/** A set's or map's elements after its one header line; undefined when the body holds anything else. */
export function blockElements(lines: readonly string[]): string[] | undefined {
  if (lines.length <= 1) return [];
  const m = /^elements = \{([\s\S]*)\}$/.exec(lines.slice(1).join(' '));
  return m ? m[1]!.split(',').map((x) => x.replace(/\s+/g, ' ').trim()).filter(Boolean) : undefined;
}

/** The hairpin set's `a . a` elements → the addresses; undefined when one is not such a pair. */
export function hairpinAddresses(elements: readonly string[]): Set<string> | undefined {
  const local = new Set<string>();
  for (const el of elements) {
    const [a, b] = el.split(' . ');
    if (!a || a !== b) return undefined;
    local.add(a);
  }
  return local;
}
