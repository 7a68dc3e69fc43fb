/**
 * Base64 as signed notes and their keys use it: the standard alphabet with
 * padding (RFC 4648 §4), decoded as Go's base64.StdEncoding decodes it,
 * which golang.org/x/mod/sumdb/note uses. That refuses a wrong length or
 * misplaced padding, and takes non-zero bits in the last character's unused
 * part (RFC 4648 §3.5 lets a decoder refuse them; Go does not, and a
 * verifier must read what Go's signers and verifiers read). Pure code.
 */

const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The bytes `text` encodes, or null if it is not padded standard base64 (the empty text is empty bytes). */
export function decodeStdBase64(text: string): Buffer | null {
  return STD_BASE64.test(text) ? Buffer.from(text, 'base64') : null;
}
