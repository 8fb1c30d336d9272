package satchel

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/satchel-oci/satchel/clients/go/satchelv1"
)

// The limits a daemon with the default config answers in ServerInfo, and
// what the client assumes of a daemon too old to have ServerInfo (it
// answers codes.Unimplemented). clients/conformance/limits.json holds the
// same numbers (server_info_defaults) for every client.
const (
	// DefaultMaxChunkBytes is the fallback for ServerInfo.MaxChunkBytes.
	DefaultMaxChunkBytes = 1 << 20
	// DefaultMaxMessageBytes is the fallback for ServerInfo.MaxMessageBytes.
	DefaultMaxMessageBytes = 8 << 20
	// HashFirstBelow is the fallback for ServerInfo.HashFirstBelow
	// (256 MiB). Push and Attach use the daemon's own answer, which its
	// config may change; see PushOptions.HashFirst.
	HashFirstBelow = 256 << 20
)

// ChunkSize is the fallback size of the file chunks sent to the daemon
// (1 MiB, DefaultMaxChunkBytes); Push and Attach send chunks of the size
// the daemon's ServerInfo names.
const ChunkSize = DefaultMaxChunkBytes

// ServerInfo is what the daemon tells of itself and its limits.
type ServerInfo struct {
	// Version is the daemon's version ("0.1.0"); empty for a daemon
	// without ServerInfo.
	Version string
	// MaxChunkBytes is the most file bytes one chunk may carry: Push and
	// Attach send chunks of this size.
	MaxChunkBytes uint32
	// MaxMessageBytes is the largest message the daemon sends or accepts.
	MaxMessageBytes uint32
	// HashFirstBelow is the size below which Push and Attach hash a file
	// before sending it (the daemon's upload_monolithic_max).
	HashFirstBelow uint64
	// ContentStore tells whether the daemon keeps a content store (which
	// UploadBlob, DownloadBlob and FileSpec.from_content_store need).
	ContentStore bool
}

// defaultServerInfo is what a daemon without ServerInfo is taken to say.
var defaultServerInfo = ServerInfo{
	MaxChunkBytes:   DefaultMaxChunkBytes,
	MaxMessageBytes: DefaultMaxMessageBytes,
	HashFirstBelow:  HashFirstBelow,
}

// ServerInfo asks the daemon for its version and limits, once per Client:
// the first answer is kept and returned to every later call, including
// concurrent ones. A daemon too old for the RPC (codes.Unimplemented) is
// taken to have the defaults (DefaultMaxChunkBytes,
// DefaultMaxMessageBytes, HashFirstBelow) and an empty Version. Any other
// error is returned and not kept, so the next call asks again.
func (c *Client) ServerInfo(ctx context.Context) (_ ServerInfo, err error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	defer surfaceDeadline(ctx, &err)
	// infoLock is a one-slot semaphore rather than a mutex, so a caller
	// waiting for another's call still honours its own ctx.
	select {
	case c.infoLock <- struct{}{}:
	case <-ctx.Done():
		return ServerInfo{}, status.FromContextError(ctx.Err()).Err()
	}
	defer func() { <-c.infoLock }()
	if c.info != nil {
		return *c.info, nil
	}
	r, err := c.rpc.ServerInfo(ctx, &pb.ServerInfoRequest{})
	var info ServerInfo
	switch {
	case status.Code(err) == codes.Unimplemented:
		info = defaultServerInfo
	case err != nil:
		return ServerInfo{}, err
	default:
		info = ServerInfo{
			Version:         r.GetVersion(),
			MaxChunkBytes:   r.GetMaxChunkBytes(),
			MaxMessageBytes: r.GetMaxMessageBytes(),
			HashFirstBelow:  r.GetHashFirstBelow(),
			ContentStore:    r.GetContentStore(),
		}
		if info.MaxChunkBytes == 0 {
			// Chunks of no bytes would never end a file.
			info.MaxChunkBytes = DefaultMaxChunkBytes
		}
	}
	c.info = &info
	return info, nil
}
