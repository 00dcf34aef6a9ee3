/** The configuration API: the model types and the loader. */
export * from './model.js';
export { loadConfig, parseConfig, formatConfigError, findSecret, findPsk, DEFAULT_CONTROL_SOCKET } from './load.js';
export {
  parseIkeProposal, parseEspProposal, proposalToText, encrName, integName, prfName, dhName,
  ProposalError, DEFAULT_IKE_PROPOSALS, DEFAULT_ESP_PROPOSALS,
} from './proposals.js';
export {
  parseTrafficSelector, formatTrafficSelector, parseIdentity, sameIdentity, ipToBuffer, bufferToIp, ValueError,
} from './addr.js';
export { parseDuration } from './yaml.js';
