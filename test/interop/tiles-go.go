// A generic C2SP tlog-tiles client for evident's HTTP tests, built on Go's
// own golang.org/x/mod/sumdb/tlog and sumdb/note (Debian's
// golang-golang-x-mod-dev). It knows only the log's URL and verifier key.
//
//	tiles-go <base URL> <verifier key>
//
// It opens /checkpoint with the key, reads the tree's tiles through
// tlog.TileHashReader (which checks every tile it reads against the signed
// root), recomputes the root, and for every entry of every bundle proves and
// checks its inclusion from its RFC 9162 leaf hash. It prints each leaf hash
// in hex, one per line, then "ok <origin> <size>"; exit 1 on any failure.
package main

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tiles reads C2SP tlog-tiles paths, which are sumdb's without the height.
type tiles struct{ base string }

func (t tiles) Height() int { return 8 }

func (t tiles) ReadTiles(list []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(list))
	for i, tile := range list {
		data, err := get(t.base + "/" + strings.Replace(tile.Path(), "tile/8/", "tile/", 1))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (t tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func main() {
	if len(os.Args) != 3 {
		fail(fmt.Errorf("usage: tiles-go <base URL> <verifier key>"))
	}
	base := strings.TrimSuffix(os.Args[1], "/")
	verifier, err := note.NewVerifier(os.Args[2])
	check(err)
	msg, err := get(base + "/checkpoint")
	check(err)
	n, err := note.Open(msg, note.VerifierList(verifier))
	check(err)
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != verifier.Name() {
		fail(fmt.Errorf("not a checkpoint of %s: %q", verifier.Name(), n.Text))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	check(err)
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	check(err)
	var root tlog.Hash
	copy(root[:], rootBytes)
	reader := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, tiles{base})
	computed, err := tlog.TreeHash(size, reader)
	check(err)
	if computed != root {
		fail(fmt.Errorf("the tiles hash to %v, not the signed root %v", computed, root))
	}
	for k := int64(0); k*256 < size; k++ {
		width := size - k*256
		if width > 256 {
			width = 256
		}
		path := tlog.Tile{H: 8, L: -1, N: k, W: int(width)}.Path()
		bundle, err := get(base + "/" + strings.Replace(path, "tile/8/data/", "tile/entries/", 1))
		check(err)
		for i := int64(0); i < width; i++ {
			if len(bundle) < 2 {
				fail(fmt.Errorf("bundle %d ends before entry %d", k, i))
			}
			length := int(binary.BigEndian.Uint16(bundle))
			if len(bundle) < 2+length {
				fail(fmt.Errorf("bundle %d: entry %d is cut short", k, i))
			}
			data := bundle[2 : 2+length]
			bundle = bundle[2+length:]
			index := k*256 + i
			leaf := tlog.RecordHash(data)
			proof, err := tlog.ProveRecord(size, index, reader)
			check(err)
			check(tlog.CheckRecord(proof, size, root, index, leaf))
			fmt.Printf("%x\n", leaf[:])
		}
		if len(bundle) != 0 {
			fail(fmt.Errorf("bundle %d holds more than %d entries", k, width))
		}
	}
	fmt.Printf("ok %s %d\n", lines[0], size)
}

func get(url string) ([]byte, error) {
	response, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer response.Body.Close()
	body, err := io.ReadAll(response.Body)
	if err != nil {
		return nil, err
	}
	if response.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s: %s", url, response.Status, body)
	}
	return body, nil
}

func check(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tiles-go:", err)
	os.Exit(1)
}
