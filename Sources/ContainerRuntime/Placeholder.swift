// ContainerRuntime: work in progress
