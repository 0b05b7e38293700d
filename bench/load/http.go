package load

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Response is what the generator keeps of one HTTP answer.
type Response struct {
	Status     int
	Pid        int  // X-Pid header, 0 when absent or malformed
	Generation int  // X-Generation header, 0 when absent or malformed
	Close      bool // the server will close the connection after this answer
	BodyLen    int64
	// ContentType is the Content-Type header, "" without one.
	ContentType string
}

// ErrMalformed is wrapped by every error about an answer that is not valid
// HTTP/1.1.
var ErrMalformed = errors.New("malformed HTTP response")

// StatusError is the error for an answer whose status is not 200.
type StatusError struct {
	Status int
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d", e.Status) }

// maxHeaderBytes bounds the status line and the headers of one answer.
const maxHeaderBytes = 64 << 10

// AppendRequest appends a GET request for path to b. With closeConn the
// request asks the server to close the connection after answering.
func AppendRequest(b []byte, path string, closeConn bool) []byte {
	b = append(b, "GET "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: bench\r\nUser-Agent: baton-bench\r\n"...)
	if closeConn {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}

// ReadResponse reads one answer to a GET request from r, body included
// (Content-Length, chunked, or until EOF when the server sends neither).
func ReadResponse(r *bufio.Reader) (Response, error) {
	resp, body, err := readHead(r)
	if err != nil {
		return resp, err
	}
	switch {
	case body.none:
	case body.chunked:
		resp.BodyLen, err = readChunked(r)
	case body.length >= 0:
		resp.BodyLen, err = io.CopyN(io.Discard, r, body.length)
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
	default:
		resp.BodyLen, err = io.Copy(io.Discard, r)
	}
	if err != nil {
		return resp, fmt.Errorf("read body: %w", err)
	}
	if resp.Status != 200 {
		return resp, &StatusError{Status: resp.Status}
	}
	return resp, nil
}

// framing is how the body of an answer ends.
type framing struct {
	none    bool  // no body (204, 304, 1xx)
	chunked bool  // Transfer-Encoding: chunked
	length  int64 // Content-Length; -1: until EOF (and not chunked)
}

// readHead reads the status line and the headers of one answer.
func readHead(r *bufio.Reader) (Response, framing, error) {
	var resp Response
	budget := maxHeaderBytes
	var fr framing
	line, err := readLine(r, &budget)
	if err != nil {
		return resp, fr, err
	}
	proto, rest, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") {
		return resp, fr, fmt.Errorf("%w: status line %q", ErrMalformed, line)
	}
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 {
		return resp, fr, fmt.Errorf("%w: status line %q", ErrMalformed, line)
	}
	resp.Status = status
	resp.Close = proto == "HTTP/1.0"

	contentLength := int64(-1)
	chunked := false
	for {
		line, err := readLine(r, &budget)
		if err != nil {
			return resp, fr, err
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return resp, fr, fmt.Errorf("%w: header line %q", ErrMalformed, line)
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				return resp, fr, fmt.Errorf("%w: content-length %q", ErrMalformed, value)
			}
			contentLength = n
		case "transfer-encoding":
			chunked = strings.EqualFold(value, "chunked")
		case "connection":
			for tok := range strings.SplitSeq(value, ",") {
				switch strings.ToLower(strings.TrimSpace(tok)) {
				case "close":
					resp.Close = true
				case "keep-alive":
					resp.Close = false
				}
			}
		case "content-type":
			resp.ContentType = value
		case "x-pid":
			resp.Pid, _ = strconv.Atoi(value)
		case "x-generation":
			resp.Generation, _ = strconv.Atoi(value)
		}
	}

	fr.length = contentLength
	switch {
	case resp.Status == 204 || resp.Status == 304 || resp.Status/100 == 1:
		fr.none = true
	case chunked:
		fr.chunked = true
	case contentLength < 0:
		resp.Close = true // the body ends with the connection
	}
	return resp, fr, nil
}

// readLine reads one CRLF- or LF-terminated line without its terminator,
// charging its length to budget. An EOF in the middle of a line is
// io.ErrUnexpectedEOF.
func readLine(r *bufio.Reader, budget *int) (string, error) {
	var sb strings.Builder
	for {
		frag, err := r.ReadSlice('\n')
		*budget -= len(frag)
		if *budget < 0 {
			return "", fmt.Errorf("%w: headers over %d bytes", ErrMalformed, maxHeaderBytes)
		}
		sb.Write(frag)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return "", io.ErrUnexpectedEOF
		}
		return "", err
	}
	line := strings.TrimSuffix(sb.String(), "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

// readChunked discards a chunked body and its trailers and returns the
// number of body bytes.
func readChunked(r *bufio.Reader) (int64, error) {
	var total int64
	budget := maxHeaderBytes
	for {
		line, err := readLine(r, &budget)
		if err != nil {
			return total, err
		}
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if err != nil || n < 0 {
			return total, fmt.Errorf("%w: chunk size %q", ErrMalformed, line)
		}
		if n == 0 {
			for { // trailers up to the empty line
				line, err := readLine(r, &budget)
				if err != nil {
					return total, err
				}
				if line == "" {
					return total, nil
				}
			}
		}
		m, err := io.CopyN(io.Discard, r, n)
		total += m
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return total, err
		}
		line, err = readLine(r, &budget)
		if err != nil {
			return total, err
		}
		if line != "" {
			return total, fmt.Errorf("%w: no CRLF after chunk", ErrMalformed)
		}
	}
}
