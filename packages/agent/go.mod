module stasis.dev/agent

go 1.22
