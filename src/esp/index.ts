/** The userspace ESP engine's public surface (see engine.ts for the pipeline). */
export { EspEngine, NAT_T_PORT, type EspDatagram, type EspEngineCounters, type EspEngineOptions, type ReceivedDatagram } from './engine.js';
export { EspSa, createEspTransform, EXPIRE_HARD, EXPIRE_SOFT, type EspSaCounters, type EspSaOptions, type EspTransform, type EspTransformOptions, type IvSource } from './sa.js';
export { ReplayWindow, type ReplayCheck, type ReplayReject } from './replay.js';
export {
  ESP_HEADER_BYTES, PaddingError, decodeEspHeader, espPadLength, espSealedLength, openEsp, parseTrailer, sealEsp,
  type EspHeader, type EspPlaintext,
} from './packet.js';
export { OPAQUE_PORT, buildTransportIPv4, decodeInnerPacket, ipv4HeaderChecksum, rebuildTransportIPv4, type InnerPacket } from './ip.js';
export { CompiledSelector, PolicyTable, matchesInbound, matchesOutbound } from './selector.js';
