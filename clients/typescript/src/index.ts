export {
  type AttachOptions,
  type DiscoverOptions,
  type FileInput,
  type KeySource,
  type PulledFile,
  type PullOptions,
  type PullResult,
  type PullStreamOptions,
  type PushOptions,
  type ResolveOptions,
  SatchelClient,
  type SatchelClientOptions,
  SatchelError,
  safeJoin,
  type TargetOptions,
  type TimeoutOptions,
  type VerifyOptions,
} from "./client";
export {
  CLIENT_RECEIVE_LIMIT_BYTES,
  defaultAddress,
  FLOW_CONTROL_WINDOW_BYTES,
  SERVER_INFO_DEFAULTS,
} from "./limits";
export { DIRECTORY_MEDIA_TYPE } from "./pack";
export { checkTitle, checkTitles, COMPONENT_MAX_BYTES, TOTAL_MAX_BYTES } from "./titles";
export {
  isDirectoryLayer,
  TAR_DIGEST_ANNOTATION,
  unpack,
  UNPACK_ANNOTATION,
  UNPACK_LIMITS,
  type UnpackLimits,
} from "./unpack";
export { status } from "@grpc/grpc-js";
export * from "./gen/satchel/v1/satchel";
