import { Range, type Etcd3 } from 'etcd3';

/** Keys per range read: a page stays far below gRPC's 4 MiB message limit even with large Docker-view records. */
export const PAGE = 1000;

/**
 * Every key under each prefix, all at one etcd revision (a consistent cut of the cluster), in pages of PAGE keys:
 * the number of round trips is (keys / PAGE) + one per prefix, never one per object.
 */
export async function readPrefixes<K extends string>(client: Etcd3, prefixes: Record<K, string>): Promise<{ data: Record<K, Map<string, string>>; reads: number }> {
  let revision: string | undefined;
  let reads = 0;
  const data = {} as Record<K, Map<string, string>>;
  for (const [name, prefix] of Object.entries(prefixes) as [K, string][]) {
    const out = new Map<string, string>();
    const end = Range.prefix(prefix).end;
    let from: Buffer = Buffer.from(prefix);
    for (;;) {
      const q = client.getAll().inRange(new Range(from, end)).limit(PAGE).sort('Key', 'Ascend');
      if (revision) q.revision(revision);
      const res = await q.exec();
      reads++;
      revision ??= res.header.revision;
      for (const kv of res.kvs) out.set(kv.key.toString(), kv.value.toString());
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    data[name] = out;
  }
  return { data, reads };
}
