export {
  type AttachOptions,
  CHUNK_SIZE,
  HASH_FIRST_BELOW,
  MAX_MESSAGE_SIZE,
  type DiscoverOptions,
  type FileInput,
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
} from "./client";
export { checkTitle, checkTitles, COMPONENT_MAX_BYTES, TOTAL_MAX_BYTES } from "./titles";
export { status } from "@grpc/grpc-js";
export * from "./gen/satchel/v1/satchel";
