/**
 * Input of the overlay data plane, fed from etcd by the control plane. Plain data; desiredKernelState() validates it
 * and reports (rather than throws on) entries it cannot use, so one bad lease never blocks the others.
 */

export interface OverlayNetwork {
  id: string;
  /** VXLAN network identifier, 1..16777215, unique in the cluster. */
  vni: number;
  /** The network CIDR, e.g. 10.128.0.0/20. */
  subnet: string;
  /** User `-o mtu`; default: underlay MTU minus the VXLAN overhead. */
  mtu?: number;
}

/** A flannel-format host-subnet lease: which node owns which host subnet of a network and how to reach it. */
export interface HostLease {
  networkId: string;
  /** Host subnet, e.g. 10.128.1.0/25. */
  subnet: string;
  publicIp: string;
  vtepMac: string;
  node: string;
}

export interface LocalNode {
  name: string;
  publicIp: string;
  /** Name of the interface that carries VXLAN packets. */
  underlayInterface: string;
  /** UDP port of the VXLAN devices (flannel and Linux default: 8472). */
  vxlanPort: number;
}

export interface OverlayState {
  node: LocalNode;
  networks: OverlayNetwork[];
  leases: HostLease[];
}
