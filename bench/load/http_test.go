package load

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Response
		wantErr error // matched with errors.Is; nil means success
		status  bool  // a *StatusError is expected
		rest    string
	}{
		{
			name: "content-length keep-alive",
			in:   "HTTP/1.1 200 OK\r\nX-Pid: 42\r\nX-Generation: 3\r\nContent-Length: 5\r\n\r\nhelloNEXT",
			want: Response{Status: 200, Pid: 42, Generation: 3, BodyLen: 5},
			rest: "NEXT",
		},
		{
			name: "connection close and odd case",
			in:   "HTTP/1.1 200 OK\r\nconnection: Close\r\nx-pid:7\r\ncontent-length: 0\r\n\r\n",
			want: Response{Status: 200, Pid: 7, Close: true},
		},
		{
			name: "http/1.0 closes",
			in:   "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
			want: Response{Status: 200, Close: true, BodyLen: 2},
		},
		{
			name: "http/1.0 keep-alive",
			in:   "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
			want: Response{Status: 200, BodyLen: 2},
		},
		{
			name: "chunked with extension and trailer",
			in:   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\nNEXT",
			want: Response{Status: 200, BodyLen: 5},
			rest: "NEXT",
		},
		{
			name: "bare LF",
			in:   "HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
			want: Response{Status: 200, BodyLen: 1},
		},
		{
			name: "body until eof",
			in:   "HTTP/1.1 200 OK\r\n\r\nabcdef",
			want: Response{Status: 200, Close: true, BodyLen: 6},
		},
		{
			name:   "bad status",
			in:     "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
			want:   Response{Status: 503, BodyLen: 4},
			status: true,
		},
		{
			name: "no body for 204",
			in:   "HTTP/1.1 204 No Content\r\n\r\nNEXT",
			want: Response{Status: 204},
			rest: "NEXT", status: true,
		},
		{name: "not http", in: "SSH-2.0-OpenSSH\r\n\r\n", wantErr: ErrMalformed},
		{name: "short status", in: "HTTP/1.1 20 OK\r\n\r\n", wantErr: ErrMalformed},
		{name: "header without colon", in: "HTTP/1.1 200 OK\r\nbogus\r\n\r\n", want: Response{Status: 200}, wantErr: ErrMalformed},
		{name: "negative length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", want: Response{Status: 200}, wantErr: ErrMalformed},
		{name: "bad chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", want: Response{Status: 200}, wantErr: ErrMalformed},
		{name: "truncated headers", in: "HTTP/1.1 200 OK\r\nContent-Le", want: Response{Status: 200}, wantErr: io.ErrUnexpectedEOF},
		{name: "truncated body", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", want: Response{Status: 200, BodyLen: 3}, wantErr: io.ErrUnexpectedEOF},
		{name: "truncated chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", want: Response{Status: 200, BodyLen: 2}, wantErr: io.ErrUnexpectedEOF},
		{name: "empty", in: "", wantErr: io.ErrUnexpectedEOF},
		{name: "huge header", in: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n", want: Response{Status: 200}, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			got, err := ReadResponse(r)
			var se *StatusError
			switch {
			case tt.status:
				if !errors.As(err, &se) || se.Status != tt.want.Status {
					t.Fatalf("err = %v, want status %d", err, tt.want.Status)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("err = %v", err)
			}
			if got != tt.want {
				t.Errorf("response = %+v, want %+v", got, tt.want)
			}
			if tt.wantErr == nil {
				rest, _ := io.ReadAll(r)
				if string(rest) != tt.rest {
					t.Errorf("left over %q, want %q", rest, tt.rest)
				}
			}
		})
	}
}

func TestAppendRequest(t *testing.T) {
	got := string(AppendRequest(nil, "/?ms=5", true))
	want := "GET /?ms=5 HTTP/1.1\r\nHost: bench\r\nUser-Agent: baton-bench\r\nConnection: close\r\n\r\n"
	if got != want {
		t.Errorf("request = %q, want %q", got, want)
	}
	if strings.Contains(string(AppendRequest(nil, "/", false)), "Connection") {
		t.Error("keep-alive request carries a Connection header")
	}
}
