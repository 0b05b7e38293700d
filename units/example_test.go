package units_test

import (
	"fmt"
	"log"

	"github.com/batonhq/baton/units"
)

func ExampleGenerate() {
	files, err := units.Generate(units.Spec{
		Name: "myapp",
		Exec: []string{"/usr/local/bin/myapp", "-config", "/etc/myapp.toml"},
		Sockets: []units.Socket{
			{Name: "http", URL: "tcp://:8080"},
			{Name: "admin", URL: "unix:/run/myapp-admin.sock"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range files {
		fmt.Println(f.Name)
	}
	fmt.Printf("%s", files[1].Bytes())
	// Output:
	// myapp.service
	// myapp-http.socket
	// myapp-admin.socket
	// [Unit]
	// Description=myapp socket http
	//
	// [Socket]
	// ListenStream=8080
	// FileDescriptorName=http
	// Service=myapp.service
	//
	// [Install]
	// WantedBy=sockets.target
}

func ExampleGenerate_badSpec() {
	_, err := units.Generate(units.Spec{
		Name: "myapp",
		Exec: []string{"myapp"},
	})
	fmt.Println(err)
	// Output:
	// Exec[0] "myapp": program path is not absolute
}
