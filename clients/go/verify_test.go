package satchel_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	satchel "github.com/satchel-oci/satchel/clients/go"
)

func readKey(t *testing.T, name string) []byte {
	t.Helper()
	pem, err := os.ReadFile(envVars[name])
	if err != nil {
		t.Fatalf("the key %s: %v", name, err)
	}
	return pem
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("err = %v; want %v", err, code)
	}
}

// A cosign signature (testenv's SBOM, signed by the real cosign) verifies
// under its key, not under another; an unsigned image is refused.
func TestVerifyCosignSignature(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	reg := satchel.TargetOptions{PlainHTTP: true}
	sbom := envVars["SATCHEL_SIGNED_SBOM"]
	ok, err := c.Verify(ctx, sbom, satchel.VerifyOptions{TargetOptions: reg, Keys: [][]byte{readKey(t, "SATCHEL_SIGNING_KEY")}})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if ok.Reference != sbom || ok.Signature.Form != "sigstore-bundle-v0.3" || !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(ok.Signature.KeyFingerprint) {
		t.Fatalf("verified = %+v", ok)
	}
	_, err = c.Verify(ctx, sbom, satchel.VerifyOptions{TargetOptions: reg, Keys: [][]byte{readKey(t, "SATCHEL_OTHER_KEY")}})
	wantCode(t, err, codes.PermissionDenied)
	_, err = c.Verify(ctx, envVars["SATCHEL_SIGNED_SUBJECT"], satchel.VerifyOptions{TargetOptions: reg, Keys: [][]byte{readKey(t, "SATCHEL_SIGNING_KEY")}})
	wantCode(t, err, codes.FailedPrecondition)
}

// The verified pull names its signature; under another key nothing is
// written.
func TestPullAttachmentVerified(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	reg := satchel.TargetOptions{PlainHTTP: true}
	subject := envVars["SATCHEL_SIGNED_SUBJECT"]
	out := filepath.Join(t.TempDir(), "ok")
	pulled, err := c.PullAttachment(ctx, subject, "application/vnd.cyclonedx+json", satchel.PullOptions{TargetOptions: reg, OutputDir: out, VerifyKeys: [][]byte{readKey(t, "SATCHEL_SIGNING_KEY")}})
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if pulled.Reference != envVars["SATCHEL_SIGNED_SBOM"] || pulled.Signature == nil || pulled.Signature.Form != "sigstore-bundle-v0.3" {
		t.Fatalf("pulled = %+v", pulled)
	}
	refused := filepath.Join(t.TempDir(), "refused")
	_, err = c.PullAttachment(ctx, subject, "application/vnd.cyclonedx+json", satchel.PullOptions{TargetOptions: reg, OutputDir: refused, VerifyKeys: [][]byte{readKey(t, "SATCHEL_OTHER_KEY")}})
	wantCode(t, err, codes.PermissionDenied)
	if _, err := os.Stat(refused); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused pull left %s: %v", refused, err)
	}
}

// Discover says of each referrer whether it verifies.
func TestDiscoverVerifies(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	found, err := c.Discover(ctx, envVars["SATCHEL_SIGNED_SUBJECT"], satchel.DiscoverOptions{
		TargetOptions: satchel.TargetOptions{PlainHTTP: true},
		VerifyKeys:    [][]byte{readKey(t, "SATCHEL_SIGNING_KEY")},
	})
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	seen := false
	for _, r := range found.Referrers {
		if r.Descriptor.Digest == strings.SplitN(envVars["SATCHEL_SIGNED_SBOM"], "@", 2)[1] {
			seen = true
			if r.Verification == nil || !r.Verification.Verified {
				t.Fatalf("the signed SBOM does not verify: %+v", r.Verification)
			}
		}
	}
	if !seen {
		t.Fatalf("the signed SBOM is not among %+v", found.Referrers)
	}
}
