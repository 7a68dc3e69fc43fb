// A reference peer for evident's signed-note tests: Go's own
// golang.org/x/mod/sumdb/note, built from Debian's golang-golang-x-mod-dev.
//
//	note-go verify <verifier key> <message file>   prints the note text; exit 1 if it does not open
//	note-go sign <signer key> <text file>          prints the signed note
//	note-go keygen <name>                          prints the signer key, then the verifier key
package main

import (
	"crypto/rand"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: note-go verify|sign|keygen ...")
	}
	switch os.Args[1] {
	case "verify":
		v, err := note.NewVerifier(os.Args[2])
		check(err)
		msg, err := os.ReadFile(os.Args[3])
		check(err)
		n, err := note.Open(msg, note.VerifierList(v))
		check(err)
		fmt.Print(n.Text)
	case "sign":
		s, err := note.NewSigner(os.Args[2])
		check(err)
		text, err := os.ReadFile(os.Args[3])
		check(err)
		msg, err := note.Sign(&note.Note{Text: string(text)}, s)
		check(err)
		os.Stdout.Write(msg)
	case "keygen":
		skey, vkey, err := note.GenerateKey(rand.Reader, os.Args[2])
		check(err)
		fmt.Println(skey)
		fmt.Println(vkey)
	default:
		fail("unknown command " + os.Args[1])
	}
}

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
