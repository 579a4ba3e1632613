package testenv

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// tcpListen is the state of a listening socket in /proc/net/tcp{,6}.
const tcpListen = "0A"

// probeDialTimeout bounds one probe connection.
const probeDialTimeout = 2 * time.Second

// NonLoopbackAddrs returns the machine's IPv4 and IPv6 unicast addresses that are not loopback
// (nor link-local), as a client elsewhere on the network would reach the machine.
func NonLoopbackAddrs() ([]net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []net.IP
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifc.Name, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || !ipn.IP.IsGlobalUnicast() {
				continue
			}
			out = append(out, ipn.IP)
		}
	}
	return out, nil
}

// ListeningAddrs returns the local addresses of the listening TCP sockets on port, read from
// /proc/net/tcp and /proc/net/tcp6 (Linux).
func ListeningAddrs(port int) ([]net.IP, error) {
	var out []net.IP
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != tcpListen {
				continue
			}
			hostHex, portHex, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			p, err := strconv.ParseUint(portHex, 16, 16)
			if err != nil || int(p) != port {
				continue
			}
			ip, err := procIP(hostHex)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			out = append(out, ip)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// procIP decodes an address of /proc/net/tcp{,6}: 32-bit words in host (little-endian) order.
func procIP(h string) (net.IP, error) {
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != net.IPv4len && len(b) != net.IPv6len) {
		return nil, fmt.Errorf("bad address %q", h)
	}
	ip := make(net.IP, len(b))
	for i := 0; i < len(b); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return ip, nil
}

// LoopbackOnlyProblems lists every way in which a server on port is reachable from beyond the
// machine: a listening socket bound to anything but a loopback address, or a connection to one
// of the machine's non-loopback addresses that is not refused. It also reports a server that
// does not answer on 127.0.0.1 at all. No problems: only loopback clients can reach it.
func LoopbackOnlyProblems(port int) ([]string, error) {
	var problems []string
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), probeDialTimeout)
	if err != nil {
		problems = append(problems, fmt.Sprintf("nothing answers on 127.0.0.1:%d: %v", port, err))
	} else {
		c.Close()
	}
	listening, err := ListeningAddrs(port)
	if err != nil {
		return nil, err
	}
	if len(listening) == 0 {
		problems = append(problems, fmt.Sprintf("no listening socket on port %d in /proc/net/tcp{,6}", port))
	}
	for _, ip := range listening {
		if !ip.IsLoopback() {
			problems = append(problems, fmt.Sprintf("listening on %s port %d", ip, port))
		}
	}
	addrs, err := NonLoopbackAddrs()
	if err != nil {
		return nil, err
	}
	for _, ip := range addrs {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)), probeDialTimeout)
		if err == nil {
			c.Close()
			problems = append(problems, fmt.Sprintf("%s:%d accepts a connection", ip, port))
			continue
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			problems = append(problems, fmt.Sprintf("%s:%d: expected connection refused, got %v", ip, port, err))
		}
	}
	return problems, nil
}
