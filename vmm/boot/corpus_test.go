package boot

import (
	"bytes"
	"strconv"
)

// decodeCorpusBytes decodes a one-value "go test fuzz v1" file holding a
// []byte literal.
func decodeCorpusBytes(b []byte) ([]byte, bool) {
	const head = "go test fuzz v1\n[]byte("
	if !bytes.HasPrefix(b, []byte(head)) {
		return nil, false
	}
	lit := bytes.TrimSpace(b[len(head):])
	lit, ok := bytes.CutSuffix(lit, []byte(")"))
	if !ok {
		return nil, false
	}
	s, err := strconv.Unquote(string(lit))
	if err != nil {
		return nil, false
	}
	return []byte(s), true
}
