// dns-packet decodes `rcode` on every packet and its OPT records carry `ttl` and no `data`; its typings say
// otherwise. The tests read those fields, so the types are completed here (tests only).
import 'dns-packet';

declare module 'dns-packet' {
  interface Packet { rcode?: string }
  interface OptAnswer { ttl?: number; data?: undefined }
}
