package kubernetes

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
)

// imageFile is one file of a test image: its content and mode, owned by
// root.
type imageFile struct {
	data []byte
	mode int64
}

// ociImage is an image the kubelet runs without a registry: one layer
// holding files (their directories made 0755), written by ociArchive as
// the OCI image layout in a tar that `ctr images import` takes.
type ociImage struct {
	name       string // as containerd names it: docker.io/library/myapp:latest
	files      map[string]imageFile
	entrypoint []string
}

// ociArchive writes img as an OCI image layout tar at path: the layer, its
// config (this machine's architecture), the manifest, and an index whose
// io.containerd.image.name annotation names the image.
func ociArchive(img ociImage, path string) error {
	layer, err := tarOf(img.files)
	if err != nil {
		return err
	}
	layerDigest := digest(layer)
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": img.entrypoint, "Env": []string{"PATH=/usr/bin:/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor("application/vnd.oci.image.config.v1+json", config),
		"layers":        []any{descriptor("application/vnd.oci.image.layer.v1.tar", layer)},
	})
	if err != nil {
		return err
	}
	m := descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
	m["annotations"] = map[string]string{"io.containerd.image.name": img.name}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{m}})
	if err != nil {
		return err
	}
	files := map[string]imageFile{
		"oci-layout": {data: []byte(`{"imageLayoutVersion":"1.0.0"}`), mode: 0o644},
		"index.json": {data: index, mode: 0o644},
	}
	for _, blob := range [][]byte{layer, config, manifest} {
		files["blobs/sha256/"+digest(blob)[len("sha256:"):]] = imageFile{data: blob, mode: 0o644}
	}
	archive, err := tarOf(files)
	if err != nil {
		return err
	}
	return os.WriteFile(path, archive, 0o600)
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func descriptor(mediaType string, blob []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest(blob), "size": len(blob)}
}

// tarOf is a tar of files, in name order, each preceded by the
// directories above it that came before no other file.
func tarOf(files map[string]imageFile) ([]byte, error) {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, name := range names {
		for i := range len(name) {
			if name[i] != '/' || dirs[name[:i]] {
				continue
			}
			dirs[name[:i]] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name[:i] + "/", Mode: 0o755}); err != nil {
				return nil, err
			}
		}
		f := files[name]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
