package satchel

import (
	"context"

	pb "github.com/satchel-oci/satchel/clients/go/satchelv1"
)

// VerifyOptions are the options of Verify.
type VerifyOptions struct {
	TargetOptions
	// Keys are PEM public keys (cosign.pub: ECDSA P-256/P-384, Ed25519 or
	// RSA); a signature by any one of them is accepted. When empty, the
	// daemon's policy names the keys.
	Keys [][]byte
}

// Signature is a cosign signature that verified a manifest.
type Signature struct {
	// Digest is the signature's manifest: the bundle referrer, or the one
	// the sha256-<hex>.sig tag names.
	Digest string
	// Form is "sigstore-bundle-v0.3" or "cosign-simple-signing".
	Form string
	// KeyFingerprint is "sha256:<hex>" of the key's DER SubjectPublicKeyInfo.
	KeyFingerprint string
	// PredicateType is the signed statement's predicate type.
	PredicateType string
}

// Verified is a manifest that verified, and by which signature.
type Verified struct {
	// Descriptor is the verified manifest's descriptor.
	Descriptor
	// Reference is its canonical reference by digest.
	Reference string
	// Signature is what verified it.
	Signature Signature
}

// Verify checks that the manifest ref names is signed (by cosign) under
// one of opts.Keys, or the keys the daemon's policy trusts for it. A
// refusal is codes.FailedPrecondition when nothing checkable is there
// (unsigned, not a bundle, no key) and codes.PermissionDenied when a
// signature is there but not acceptable (another key, altered bytes, a
// signature of another digest).
func (c *Client) Verify(ctx context.Context, ref string, opts VerifyOptions) (_ *Verified, err error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	defer surfaceDeadline(ctx, &err)
	r, err := c.rpc.Verify(ctx, &pb.VerifyRequest{Target: opts.target(ref), Keys: opts.Keys})
	if err != nil {
		return nil, err
	}
	return &Verified{
		Descriptor: descriptor(r.GetManifest()),
		Reference:  r.GetReference(),
		Signature:  signature(r.GetSignature()),
	}, nil
}

func signature(s *pb.Signature) Signature {
	return Signature{
		Digest:         s.GetDigest(),
		Form:           s.GetForm(),
		KeyFingerprint: s.GetKeyFingerprint(),
		PredicateType:  s.GetPredicateType(),
	}
}
