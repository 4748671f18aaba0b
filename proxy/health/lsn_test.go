package health

import "testing"

func TestParseLSN(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{in: "0/0", want: 0},
		{in: "0/3000060", want: 0x3000060},
		{in: "16/B374D848", want: 0x16_B374D848},
		{in: "FFFFFFFF/FFFFFFFF", want: 1<<64 - 1},
		{in: "16/b374d848", want: 0x16_B374D848},
		{in: "", wantErr: true},
		{in: "16", wantErr: true},
		{in: "/1", wantErr: true},
		{in: "1/", wantErr: true},
		{in: "1/G", wantErr: true},
		{in: "100000000/0", wantErr: true},
		{in: "-1/0", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseLSN(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseLSN(%q) = %#x, %v; want %#x, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil {
			back, err := ParseLSN(LSN(got).String())
			if err != nil || back != got {
				t.Errorf("round trip of %q through %q: %#x, %v", tt.in, LSN(got), back, err)
			}
		}
	}
}

func TestParseCheckRow(t *testing.T) {
	b := func(s string) []byte { return []byte(s) }
	tests := []struct {
		name    string
		row     [][]byte
		want    probeResult
		wantErr bool
	}{
		{
			name: "writer",
			row:  [][]byte{b("f"), b("0/3000060"), b("0/3000080"), nil, nil, b("00000002")},
			want: probeResult{lsn: 0x3000060, insertLSN: 0x3000080, timeline: 2},
		},
		{
			name: "writer whose insert position reads behind its write position",
			row:  [][]byte{b("f"), b("0/3000060"), b("0/3000000"), nil, nil, b("00000001")},
			want: probeResult{lsn: 0x3000060, insertLSN: 0x3000060, timeline: 1},
		},
		{
			name: "replica",
			row:  [][]byte{b("t"), b("0/5000000"), nil, b("0/5000100"), b("3.25"), nil},
			want: probeResult{inRecovery: true, lsn: 0x5000000, receiveLSN: 0x5000100, replayAge: 3250 * 1e6, hasReplayAge: true},
		},
		{
			name: "replica with a clock behind the writer's",
			row:  [][]byte{b("t"), b("0/5000000"), nil, b("0/5000000"), b("-0.5"), nil},
			want: probeResult{inRecovery: true, lsn: 0x5000000, receiveLSN: 0x5000000, hasReplayAge: true},
		},
		{
			name: "replica that replayed nothing yet",
			row:  [][]byte{b("t"), nil, nil, nil, nil, nil},
			want: probeResult{inRecovery: true},
		},
		{name: "bad recovery flag", row: [][]byte{b("x"), b("0/1"), nil, nil, nil, nil}, wantErr: true},
		{name: "writer without position", row: [][]byte{b("f"), nil, nil, nil, nil, b("00000001")}, wantErr: true},
		{name: "bad lsn", row: [][]byte{b("t"), b("zz"), nil, nil, nil, nil}, wantErr: true},
		{name: "bad age", row: [][]byte{b("t"), b("0/1"), nil, nil, b("soon"), nil}, wantErr: true},
		{name: "bad timeline", row: [][]byte{b("f"), b("0/1"), b("0/1"), nil, nil, b("xyz")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got probeResult
			err := parseCheckRow(tt.row, &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
