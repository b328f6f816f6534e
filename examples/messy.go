package main
import ("fmt";"os")
func main(){
files:=os.Args[1:]
for _,f:=range files{
fmt.Println( "reviewing",f )}
}
