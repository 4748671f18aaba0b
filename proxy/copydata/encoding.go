package copydata

// SupportsClientEncoding reports whether a stream in client encoding name (as client_encoding
// spells it, in any case, with or without punctuation) can be split byte by byte.
//
// Postgres converts COPY data to the server encoding before it looks for delimiters, quotes,
// backslashes and newlines, and in every server encoding no byte of a multibyte character is
// ASCII. The Splitter reads the client's bytes as they are, which is the same thing except
// for the client-only encodings SJIS, SHIFT_JIS_2004, BIG5, GBK, UHC, GB18030 and JOHAB,
// whose multibyte characters may end in an ASCII byte such as a backslash: a stream in one
// of those cannot be split here, and the caller must refuse it.
func SupportsClientEncoding(name string) bool {
	switch cleanEncodingName(name) {
	case "sjis", "shiftjis", "mskanji", "win932", "windows932",
		"shiftjis2004",
		"big5", "win950", "windows950",
		"gbk", "cp936", "win936", "windows936",
		"uhc", "win949", "windows949",
		"gb18030",
		"johab":
		return false
	}
	return true
}

// cleanEncodingName folds an encoding name as Postgres's clean_encoding_name does: letters
// and digits only, lower case.
func cleanEncodingName(name string) string {
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		}
	}
	return string(b)
}
