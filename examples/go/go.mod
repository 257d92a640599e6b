module zipdeploy.example/zipdeploy

go 1.19
