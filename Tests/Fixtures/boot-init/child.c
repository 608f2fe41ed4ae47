#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    printf("child: %s pid %d parent %d\n", argc > 1 ? argv[1] : "?", getpid(), getppid());
    return 7;
}
